//! The importer on small, fully controlled CTranslate2 Whisper models: the
//! output layout whisper.cpp depends on, and the errors for broken inputs.
//! (The real base and tiny.en imports are exercised end to end by the
//! workspace tests, which load and run them in whisper.cpp.)

use std::path::Path;

use stemfeed_models::ModelError;
use stemfeed_models::ct2::write_for_tests;
use stemfeed_models::ggml::Precision;
use stemfeed_models::import::import_dir;

const D: usize = 64;
const N_VOCAB: usize = 51_865;
const F16: u8 = 4;
const I16: u8 = 2;

fn f16_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values
        .into_iter()
        .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
        .collect()
}

/// A matrix whose every element holds its row index, so splits are visible.
fn rows(n: usize, cols: usize) -> Vec<u8> {
    f16_bytes((0..n).flat_map(|r| std::iter::repeat_n(r as f32, cols)))
}

/// A fused bias `[q | 0 | v]` (or `[0 | v]`), each element its index.
fn fused_bias(parts: usize, zero_part: usize) -> Vec<u8> {
    f16_bytes((0..parts * D).map(|i| if i / D == zero_part { 0.0 } else { i as f32 }))
}

/// A one-layer Whisper with 64-wide states (and base's vocabulary size).
fn tiny_whisper(spec: &str) -> Vec<u8> {
    let mut owned: Vec<(String, Vec<usize>, u8, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, shape: &[usize], dtype: u8, data: Vec<u8>| {
        owned.push((name.to_owned(), shape.to_vec(), dtype, data));
    };
    let vec = |n: usize| f16_bytes((0..n).map(|i| i as f32 / 1000.0));
    add("encoder/num_heads", &[], I16, 1i16.to_le_bytes().to_vec());
    add("decoder/num_heads", &[], I16, 1i16.to_le_bytes().to_vec());
    add(
        "encoder/conv1/weight",
        &[D, 80, 3],
        F16,
        f16_bytes(vec![0.5; D * 80 * 3]),
    );
    add("encoder/conv1/bias", &[D], F16, vec(D));
    add(
        "encoder/conv2/weight",
        &[D, D, 3],
        F16,
        f16_bytes(vec![0.25; D * D * 3]),
    );
    add("encoder/conv2/bias", &[D], F16, vec(D));
    add(
        "encoder/position_encodings/encodings",
        &[1500, D],
        F16,
        rows(1500, D),
    );
    add(
        "decoder/position_encodings/encodings",
        &[448, D],
        F16,
        rows(448, D),
    );
    add(
        "decoder/embeddings/weight",
        &[N_VOCAB, D],
        F16,
        f16_bytes(vec![1.0; N_VOCAB * D]),
    );
    for (side, prefix) in [
        ("encoder", "encoder/layer_0"),
        ("decoder", "decoder/layer_0"),
    ] {
        for norm in ["self_attention/layer_norm", "ffn/layer_norm"] {
            add(&format!("{prefix}/{norm}/gamma"), &[D], F16, vec(D));
            add(&format!("{prefix}/{norm}/beta"), &[D], F16, vec(D));
        }
        add(
            &format!("{prefix}/self_attention/linear_0/weight"),
            &[3 * D, D],
            F16,
            rows(3 * D, D),
        );
        add(
            &format!("{prefix}/self_attention/linear_0/bias"),
            &[3 * D],
            F16,
            fused_bias(3, 1),
        );
        add(
            &format!("{prefix}/self_attention/linear_1/weight"),
            &[D, D],
            F16,
            rows(D, D),
        );
        add(
            &format!("{prefix}/self_attention/linear_1/bias"),
            &[D],
            F16,
            vec(D),
        );
        add(
            &format!("{prefix}/ffn/linear_0/weight"),
            &[4 * D, D],
            F16,
            rows(4 * D, D),
        );
        add(
            &format!("{prefix}/ffn/linear_0/bias"),
            &[4 * D],
            F16,
            vec(4 * D),
        );
        add(
            &format!("{prefix}/ffn/linear_1/weight"),
            &[D, 4 * D],
            F16,
            rows(D, 4 * D),
        );
        add(&format!("{prefix}/ffn/linear_1/bias"), &[D], F16, vec(D));
        if side == "decoder" {
            add(
                &format!("{prefix}/attention/layer_norm/gamma"),
                &[D],
                F16,
                vec(D),
            );
            add(
                &format!("{prefix}/attention/layer_norm/beta"),
                &[D],
                F16,
                vec(D),
            );
            add(
                &format!("{prefix}/attention/linear_0/weight"),
                &[D, D],
                F16,
                rows(D, D),
            );
            add(
                &format!("{prefix}/attention/linear_0/bias"),
                &[D],
                F16,
                vec(D),
            );
            add(
                &format!("{prefix}/attention/linear_1/weight"),
                &[2 * D, D],
                F16,
                rows(2 * D, D),
            );
            add(
                &format!("{prefix}/attention/linear_1/bias"),
                &[2 * D],
                F16,
                fused_bias(2, 0),
            );
            add(
                &format!("{prefix}/attention/linear_2/weight"),
                &[D, D],
                F16,
                rows(D, D),
            );
            add(
                &format!("{prefix}/attention/linear_2/bias"),
                &[D],
                F16,
                vec(D),
            );
        }
    }
    add("encoder/layer_norm/gamma", &[D], F16, vec(D));
    add("encoder/layer_norm/beta", &[D], F16, vec(D));
    add("decoder/layer_norm/gamma", &[D], F16, vec(D));
    add("decoder/layer_norm/beta", &[D], F16, vec(D));
    let vars: Vec<(&str, &[usize], u8, &[u8])> = owned
        .iter()
        .map(|(n, s, t, d)| (n.as_str(), s.as_slice(), *t, d.as_slice()))
        .collect();
    write_for_tests(
        spec,
        &vars,
        &[("decoder/projection/weight", "decoder/embeddings/weight")],
    )
}

fn vocabulary() -> String {
    (0..N_VOCAB)
        .map(|i| match i {
            50_257 => "<|endoftext|>".to_owned(),
            i if i > 50_257 => format!("<|special{i}|>"),
            // "Ġ" is GPT-2's space; every token decodes to " t<i>".
            i => format!("Ġt{i}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn model_dir(dir: &Path, model_bin: &[u8], with_vocab: bool) {
    std::fs::write(dir.join("model.bin"), model_bin).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    if with_vocab {
        std::fs::write(dir.join("vocabulary.txt"), vocabulary()).unwrap();
    }
}

struct Tensor {
    name: String,
    ty: i32,
    dims: Vec<i32>,
    data: Vec<u8>,
}

impl Tensor {
    fn first(&self) -> f32 {
        match self.ty {
            0 => f32::from_le_bytes(self.data[..4].try_into().unwrap()),
            _ => half::f16::from_le_bytes(self.data[..2].try_into().unwrap()).to_f32(),
        }
    }
}

/// Parses a ggml Whisper file the way whisper.cpp's loader walks it.
fn parse_ggml(bytes: &[u8]) -> (Vec<i32>, usize, Vec<Tensor>) {
    let mut pos = 0;
    let i32_at = |pos: &mut usize| {
        let v = i32::from_le_bytes(bytes[*pos..*pos + 4].try_into().unwrap());
        *pos += 4;
        v
    };
    let header: Vec<i32> = (0..12).map(|_| i32_at(&mut pos)).collect();
    let (n_mel, n_fft) = (i32_at(&mut pos), i32_at(&mut pos));
    pos += (n_mel * n_fft * 4) as usize;
    let n_tokens = i32_at(&mut pos) as usize;
    for _ in 0..n_tokens {
        let len = i32_at(&mut pos) as usize;
        pos += len;
    }
    let mut tensors = Vec::new();
    while pos < bytes.len() {
        let (n_dims, name_len, ty) = (i32_at(&mut pos), i32_at(&mut pos), i32_at(&mut pos));
        let dims: Vec<i32> = (0..n_dims).map(|_| i32_at(&mut pos)).collect();
        let name = String::from_utf8(bytes[pos..pos + name_len as usize].to_vec()).unwrap();
        pos += name_len as usize;
        let len = dims.iter().product::<i32>() as usize * if ty == 0 { 4 } else { 2 };
        tensors.push(Tensor {
            name,
            ty,
            dims,
            data: bytes[pos..pos + len].to_vec(),
        });
        pos += len;
    }
    assert_eq!(pos, bytes.len(), "tensor data overran the file");
    (header, n_tokens, tensors)
}

#[test]
fn imports_a_whisper_model_in_whisper_cpp_layout() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path(), &tiny_whisper("WhisperSpec"), true);
    let out = dir.path().join("out/model.ggml");
    let report = import_dir(dir.path(), &out, Precision::F16).unwrap();
    assert_eq!(report.hparams.n_audio_layer, 1);
    assert!(report.hparams.is_multilingual());

    let (header, n_tokens, tensors) = parse_ggml(&std::fs::read(&out).unwrap());
    assert_eq!(header[0], 0x6767_6d6c, "magic");
    // n_vocab, audio ctx/state/head/layer, text ctx/state/head/layer, mels, ftype
    assert_eq!(
        header[1..],
        [N_VOCAB as i32, 1500, 64, 1, 1, 448, 64, 1, 1, 80, 1]
    );
    assert_eq!(n_tokens, 50_257);
    // Per encoder layer 15 tensors, per decoder layer 24, plus 7 + 4 globals.
    assert_eq!(tensors.len(), 15 + 24 + 7 + 4);
    let get = |name: &str| {
        tensors
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };

    // Fused Q|K|V rows split in order; the key has no bias.
    for side in ["encoder", "decoder"] {
        let p = format!("{side}.blocks.0.attn");
        assert_eq!(get(&format!("{p}.query.weight")).first(), 0.0);
        assert_eq!(get(&format!("{p}.key.weight")).first(), 64.0);
        assert_eq!(get(&format!("{p}.value.weight")).first(), 128.0);
        assert_eq!(get(&format!("{p}.value.bias")).first(), 128.0);
        assert!(tensors.iter().all(|t| t.name != format!("{p}.key.bias")));
        assert_eq!(get(&format!("{p}.query.weight")).dims, [64, 64]);
    }
    assert_eq!(get("decoder.blocks.0.cross_attn.key.weight").first(), 0.0);
    assert_eq!(
        get("decoder.blocks.0.cross_attn.value.weight").first(),
        64.0
    );
    assert_eq!(get("decoder.blocks.0.cross_attn.value.bias").first(), 64.0);
    // Types and shapes whisper.cpp checks: conv bias (n,1) f32, norms f32,
    // positional embeddings f32, matrices f16, dims innermost first.
    let conv_bias = get("encoder.conv1.bias");
    assert_eq!((conv_bias.ty, conv_bias.dims.as_slice()), (0, &[1, 64][..]));
    assert_eq!(get("encoder.conv1.weight").dims, [3, 80, 64]);
    assert_eq!(get("encoder.conv1.weight").ty, 1);
    assert_eq!(get("encoder.blocks.0.mlp_ln.weight").ty, 0);
    let pos = get("decoder.positional_embedding");
    assert_eq!((pos.ty, pos.dims.as_slice()), (0, &[64, 448][..]));
    assert_eq!(
        get("decoder.token_embedding.weight").dims,
        [64, N_VOCAB as i32]
    );
    assert_eq!(get("encoder.blocks.0.mlp.0.weight").dims, [64, 256]);
    assert!(tensors.iter().any(|t| t.name == "encoder.ln_post.bias"));
    assert!(tensors.iter().any(|t| t.name == "decoder.ln.weight"));
}

#[test]
fn rejects_truncated_model_bin() {
    let dir = tempfile::tempdir().unwrap();
    let full = tiny_whisper("WhisperSpec");
    model_dir(dir.path(), &full[..full.len() / 2], true);
    let out = dir.path().join("model.ggml");
    let err = import_dir(dir.path(), &out, Precision::F16).unwrap_err();
    assert!(matches!(err, ModelError::Truncated { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("model.bin") && msg.contains("truncated") && msg.contains("variable"),
        "{msg}"
    );
    assert!(!out.exists(), "no output for a failed import");
}

#[test]
fn rejects_a_model_cut_inside_its_header() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path(), &tiny_whisper("WhisperSpec")[..9], true);
    let err = import_dir(dir.path(), &dir.path().join("m"), Precision::F16).unwrap_err();
    assert!(matches!(err, ModelError::Truncated { .. }), "{err}");
}

#[test]
fn rejects_wrong_spec_name() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path(), &tiny_whisper("TransformerSpec"), true);
    let err = import_dir(dir.path(), &dir.path().join("m"), Precision::F16).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::WrongSpec { .. }), "{msg}");
    assert!(
        msg.contains("TransformerSpec") && msg.contains("WhisperSpec"),
        "{msg}"
    );
}

#[test]
fn rejects_missing_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path(), &tiny_whisper("WhisperSpec"), false);
    let err = import_dir(dir.path(), &dir.path().join("m"), Precision::F16).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            ModelError::MissingFile {
                what: "vocabulary.txt",
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("vocabulary.txt"), "{msg}");
}

#[test]
fn rejects_a_vocabulary_from_another_model() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path(), &tiny_whisper("WhisperSpec"), true);
    // An English-only vocabulary (end-of-text at 50,256) beside multilingual weights.
    let english: String = (0..51_864)
        .map(|i| {
            if i == 50_256 {
                "<|endoftext|>".to_owned()
            } else {
                format!("t{i}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("vocabulary.txt"), english).unwrap();
    let err = import_dir(dir.path(), &dir.path().join("m"), Precision::F16).unwrap_err();
    assert!(err.to_string().contains("50257"), "{err}");
}

#[test]
fn rejects_a_file_that_is_not_ctranslate2() {
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path(), b"<html>404 Not Found</html>", true);
    let err = import_dir(dir.path(), &dir.path().join("m"), Precision::F16).unwrap_err();
    assert!(matches!(err, ModelError::NotCt2 { .. }), "{err}");
}
