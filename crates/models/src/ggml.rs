//! Writer for whisper.cpp's legacy ggml model file, fed from a CTranslate2
//! Whisper model.
//!
//! File layout (little-endian `i32` unless noted): magic `ggml`; n_vocab,
//! n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx,
//! n_text_state, n_text_head, n_text_layer, n_mels, ftype; the mel filterbank
//! (n_mels, n_fft bins, f32 values); the vocabulary (count, then length +
//! bytes per token); then tensors: n_dims, name length, type (0 f32, 1 f16),
//! dims innermost first, name, data.
//!
//! whisper.cpp finds tensors by OpenAI's names and checks every shape and
//! type, so the mapping below must be exact. CTranslate2 fuses the
//! self-attention Q, K, V projections into one (3·d × d) matrix and the
//! cross-attention K, V into one (2·d × d); they are split here. Whisper's key
//! projections have no bias: CTranslate2 stores zeros in its place, which the
//! importer checks before dropping them.

use std::io::Write;

use crate::ct2::{Ct2Model, Variable};
use crate::error::ModelError;
use crate::vocab::Vocabulary;

const MAGIC: u32 = 0x6767_6d6c;

/// ggml element types written by the importer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    /// Blocks of 32 values: an f16 scale and 32 signed bytes.
    Q8_0 = 8,
}

/// How the weight matrices are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// As CTranslate2 ships them (f16).
    #[default]
    F16,
    /// 8-bit blocks (ggml's q8_0): half the size, faster matrix products on
    /// CPUs, a small accuracy cost to be measured with `stemfeed eval asr`.
    Q8_0,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f16" => Ok(Self::F16),
            "q8_0" => Ok(Self::Q8_0),
            other => Err(format!("unknown precision {other:?}: f16 or q8_0")),
        }
    }
}

/// whisper.cpp's `ftype` for the file: ggml's "mostly" type, plus its
/// quantisation format version (2) × 1000 for quantised files.
fn file_type(p: Precision) -> i32 {
    match p {
        Precision::F16 => 1,
        Precision::Q8_0 => 2 * 1000 + 7,
    }
}

const Q8_BLOCK: usize = 32;

/// ggml's q8_0 encoding of one row (its length a multiple of 32), as
/// `quantize_row_q8_0_ref`: per block, scale = max |x| / 127, values rounded
/// to the nearest step.
fn push_q8_0(row: &[f32], buf: &mut Vec<u8>) {
    for block in row.chunks(Q8_BLOCK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        buf.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        for v in block {
            buf.push(((v * id).round() as i8).to_le_bytes()[0]);
        }
    }
}

/// Whisper's hyper-parameters, read off the tensor shapes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HParams {
    pub n_vocab: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_mels: usize,
}

impl HParams {
    /// Multilingual Whisper vocabularies have 51,865 or more entries (large-v3
    /// adds Cantonese); English-only ones 51,864.
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51_865
    }

    /// Same names as whisper.cpp's model types, by encoder depth.
    pub fn size_name(&self) -> &'static str {
        match self.n_audio_layer {
            4 => "tiny",
            6 => "base",
            12 => "small",
            24 => "medium",
            32 => "large",
            _ => "unknown",
        }
    }
}

/// One tensor of the output: a row range of a CTranslate2 variable.
#[derive(Debug)]
struct Planned<'a> {
    name: String,
    source: &'a Variable,
    rows: std::ops::Range<usize>,
    /// ggml dims, innermost first.
    dims: Vec<usize>,
    ty: GgmlType,
}

pub(crate) struct Plan<'a> {
    pub hparams: HParams,
    precision: Precision,
    tensors: Vec<Planned<'a>>,
    /// Bias rows that are dropped (Whisper's key projections): they must be zero.
    dropped_bias: Vec<(&'a Variable, std::ops::Range<usize>)>,
}

fn layer_count(model: &Ct2Model, prefix: &str) -> usize {
    (0..)
        .take_while(|i| {
            model
                .get(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
                .is_some()
        })
        .count()
}

impl<'a> Plan<'a> {
    pub fn new(model: &'a Ct2Model, precision: Precision) -> Result<Self, ModelError> {
        let unsupported = |reason: String| ModelError::Unsupported {
            path: model.path().to_path_buf(),
            reason,
        };
        let conv1 = model.require("encoder/conv1/weight")?;
        let embeddings = model.require("decoder/embeddings/weight")?;
        let enc_pos = model.require("encoder/position_encodings/encodings")?;
        let dec_pos = model.require("decoder/position_encodings/encodings")?;
        if conv1.shape.len() != 3 || embeddings.shape.len() != 2 {
            return Err(unsupported(format!(
                "unexpected shapes: conv1 {:?}, embeddings {:?}",
                conv1.shape, embeddings.shape
            )));
        }
        let n_audio_state = conv1.shape[0];
        let n_text_state = embeddings.shape[1];
        // Whisper's attention heads are 64 wide; CTranslate2 records the count.
        let heads = |name: &str, state: usize| -> Result<usize, ModelError> {
            Ok(model.scalar_int(name)?.map_or(state / 64, |h| h as usize))
        };
        let hparams = HParams {
            n_vocab: embeddings.shape[0],
            n_audio_ctx: enc_pos.shape[0],
            n_audio_state,
            n_audio_head: heads("encoder/num_heads", n_audio_state)?,
            n_audio_layer: layer_count(model, "encoder"),
            n_text_ctx: dec_pos.shape[0],
            n_text_state,
            n_text_head: heads("decoder/num_heads", n_text_state)?,
            n_text_layer: layer_count(model, "decoder"),
            n_mels: conv1.shape[1],
        };
        if hparams.n_audio_layer == 0 || hparams.n_text_layer == 0 {
            return Err(unsupported("no encoder or decoder layers found".into()));
        }

        // Tensors are written in the order of OpenAI's PyTorch state dict (a
        // module's own parameters and buffers, then its children in
        // construction order), the order whisper.cpp's reference converter
        // uses, so an import of the same weights is byte-identical to the
        // official ggml file.
        let mut plan = Plan {
            hparams,
            precision,
            tensors: Vec::new(),
            dropped_bias: Vec::new(),
        };
        plan.whole(
            model,
            "encoder.positional_embedding",
            "encoder/position_encodings/encodings",
        )?;
        for conv in ["conv1", "conv2"] {
            plan.whole(
                model,
                &format!("encoder.{conv}.weight"),
                &format!("encoder/{conv}/weight"),
            )?;
            plan.conv_bias(
                model,
                &format!("encoder.{conv}.bias"),
                &format!("encoder/{conv}/bias"),
            )?;
        }
        for i in 0..plan.hparams.n_audio_layer {
            let (src, dst) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
            plan.self_attention(model, &src, &dst, n_audio_state)?;
            plan.ffn(model, &src, &dst)?;
        }
        plan.norm(model, "encoder.ln_post", "encoder/layer_norm")?;

        plan.whole(
            model,
            "decoder.positional_embedding",
            "decoder/position_encodings/encodings",
        )?;
        plan.whole(
            model,
            "decoder.token_embedding.weight",
            "decoder/embeddings/weight",
        )?;
        for i in 0..plan.hparams.n_text_layer {
            let (src, dst) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
            plan.self_attention(model, &src, &dst, n_text_state)?;
            plan.cross_attention(model, &src, &dst, n_text_state)?;
            plan.ffn(model, &src, &dst)?;
        }
        plan.norm(model, "decoder.ln", "decoder/layer_norm")?;
        Ok(plan)
    }

    /// Adds rows `rows` of `src` under `name`. Positional embeddings, biases,
    /// norms (anything 1-D) are f32; matrices f16, as whisper.cpp expects.
    fn add(
        &mut self,
        model: &'a Ct2Model,
        name: &str,
        src: &str,
        rows: Option<std::ops::Range<usize>>,
    ) -> Result<(), ModelError> {
        let source = model.require(src)?;
        let total_rows = source.shape.first().copied().unwrap_or(1);
        let rows = rows.unwrap_or(0..total_rows);
        if rows.end > total_rows {
            return Err(ModelError::Unsupported {
                path: model.path().to_path_buf(),
                reason: format!(
                    "{src} has {total_rows} rows, expected at least {}",
                    rows.end
                ),
            });
        }
        let mut shape = source.shape.clone();
        if let Some(first) = shape.first_mut() {
            *first = rows.len();
        }
        // whisper.cpp's quantiser (and its loader) leaves the 3-D conv
        // kernels in f16 and the positional embeddings in f32.
        let ty = if shape.len() < 2 || name.ends_with("positional_embedding") {
            GgmlType::F32
        } else if shape.len() == 2 && self.precision == Precision::Q8_0 && shape[1] % Q8_BLOCK == 0
        {
            GgmlType::Q8_0
        } else {
            GgmlType::F16
        };
        self.tensors.push(Planned {
            name: name.to_owned(),
            source,
            rows,
            dims: shape.into_iter().rev().collect(),
            ty,
        });
        Ok(())
    }

    fn whole(&mut self, model: &'a Ct2Model, name: &str, src: &str) -> Result<(), ModelError> {
        self.add(model, name, src, None)
    }

    /// Conv biases are stored as (n, 1) matrices in f32.
    fn conv_bias(&mut self, model: &'a Ct2Model, name: &str, src: &str) -> Result<(), ModelError> {
        self.add(model, name, src, None)?;
        let t = self.tensors.last_mut().expect("just added");
        t.dims = vec![1, t.dims[0]];
        t.ty = GgmlType::F32;
        Ok(())
    }

    fn norm(&mut self, model: &'a Ct2Model, dst: &str, src: &str) -> Result<(), ModelError> {
        self.whole(model, &format!("{dst}.weight"), &format!("{src}/gamma"))?;
        self.whole(model, &format!("{dst}.bias"), &format!("{src}/beta"))
    }

    fn linear(&mut self, model: &'a Ct2Model, dst: &str, src: &str) -> Result<(), ModelError> {
        self.whole(model, &format!("{dst}.weight"), &format!("{src}/weight"))?;
        self.whole(model, &format!("{dst}.bias"), &format!("{src}/bias"))
    }

    fn self_attention(
        &mut self,
        model: &'a Ct2Model,
        src: &str,
        dst: &str,
        d: usize,
    ) -> Result<(), ModelError> {
        let fused = format!("{src}/self_attention/linear_0");
        let (w, b) = (format!("{fused}/weight"), format!("{fused}/bias"));
        self.add(model, &format!("{dst}.attn.query.weight"), &w, Some(0..d))?;
        self.add(model, &format!("{dst}.attn.query.bias"), &b, Some(0..d))?;
        self.add(model, &format!("{dst}.attn.key.weight"), &w, Some(d..2 * d))?;
        self.drop_bias(model, &b, d..2 * d)?;
        self.add(
            model,
            &format!("{dst}.attn.value.weight"),
            &w,
            Some(2 * d..3 * d),
        )?;
        self.add(
            model,
            &format!("{dst}.attn.value.bias"),
            &b,
            Some(2 * d..3 * d),
        )?;
        self.linear(
            model,
            &format!("{dst}.attn.out"),
            &format!("{src}/self_attention/linear_1"),
        )?;
        self.norm(
            model,
            &format!("{dst}.attn_ln"),
            &format!("{src}/self_attention/layer_norm"),
        )
    }

    fn cross_attention(
        &mut self,
        model: &'a Ct2Model,
        src: &str,
        dst: &str,
        d: usize,
    ) -> Result<(), ModelError> {
        self.linear(
            model,
            &format!("{dst}.cross_attn.query"),
            &format!("{src}/attention/linear_0"),
        )?;
        let fused = format!("{src}/attention/linear_1");
        let (w, b) = (format!("{fused}/weight"), format!("{fused}/bias"));
        self.add(
            model,
            &format!("{dst}.cross_attn.key.weight"),
            &w,
            Some(0..d),
        )?;
        self.drop_bias(model, &b, 0..d)?;
        self.add(
            model,
            &format!("{dst}.cross_attn.value.weight"),
            &w,
            Some(d..2 * d),
        )?;
        self.add(
            model,
            &format!("{dst}.cross_attn.value.bias"),
            &b,
            Some(d..2 * d),
        )?;
        self.linear(
            model,
            &format!("{dst}.cross_attn.out"),
            &format!("{src}/attention/linear_2"),
        )?;
        self.norm(
            model,
            &format!("{dst}.cross_attn_ln"),
            &format!("{src}/attention/layer_norm"),
        )
    }

    fn ffn(&mut self, model: &'a Ct2Model, src: &str, dst: &str) -> Result<(), ModelError> {
        self.linear(
            model,
            &format!("{dst}.mlp.0"),
            &format!("{src}/ffn/linear_0"),
        )?;
        self.linear(
            model,
            &format!("{dst}.mlp.2"),
            &format!("{src}/ffn/linear_1"),
        )?;
        self.norm(
            model,
            &format!("{dst}.mlp_ln"),
            &format!("{src}/ffn/layer_norm"),
        )
    }

    fn drop_bias(
        &mut self,
        model: &'a Ct2Model,
        src: &str,
        rows: std::ops::Range<usize>,
    ) -> Result<(), ModelError> {
        self.dropped_bias.push((model.require(src)?, rows));
        Ok(())
    }

    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// Writes the whole ggml file.
    pub fn write(
        &self,
        model: &Ct2Model,
        vocab: &Vocabulary,
        filters: &[f32],
        n_fft_bins: usize,
        out: &mut impl Write,
    ) -> Result<(), ModelError> {
        for (var, rows) in &self.dropped_bias {
            let values = model.read_f32(var)?;
            if values[rows.clone()].iter().any(|v| *v != 0.0) {
                return Err(ModelError::Unsupported {
                    path: model.path().to_path_buf(),
                    reason: format!(
                        "{} has a non-zero key bias; Whisper's key projection has none",
                        var.name
                    ),
                });
            }
        }
        let io = ModelError::io("<ggml output>");
        let h = &self.hparams;
        let mut header = Vec::with_capacity(64);
        header.extend_from_slice(&MAGIC.to_le_bytes());
        for v in [
            h.n_vocab,
            h.n_audio_ctx,
            h.n_audio_state,
            h.n_audio_head,
            h.n_audio_layer,
            h.n_text_ctx,
            h.n_text_state,
            h.n_text_head,
            h.n_text_layer,
            h.n_mels,
        ] {
            header.extend_from_slice(&(v as i32).to_le_bytes());
        }
        header.extend_from_slice(&file_type(self.precision).to_le_bytes());
        header.extend_from_slice(&(h.n_mels as i32).to_le_bytes());
        header.extend_from_slice(&(n_fft_bins as i32).to_le_bytes());
        for f in filters {
            header.extend_from_slice(&f.to_le_bytes());
        }
        let tokens = vocab.base_tokens();
        header.extend_from_slice(&(tokens.len() as i32).to_le_bytes());
        for token in tokens {
            header.extend_from_slice(&(token.len() as i32).to_le_bytes());
            header.extend_from_slice(token);
        }
        out.write_all(&header).map_err(io)?;

        for t in &self.tensors {
            let values = model.read_f32(t.source)?;
            let row_len = t.source.shape.iter().skip(1).product::<usize>();
            let slice = &values[t.rows.start * row_len..t.rows.end * row_len];
            let mut buf = Vec::with_capacity(16 + t.name.len() + slice.len() * 4);
            buf.extend_from_slice(&(t.dims.len() as i32).to_le_bytes());
            buf.extend_from_slice(&(t.name.len() as i32).to_le_bytes());
            buf.extend_from_slice(&(t.ty as i32).to_le_bytes());
            for d in &t.dims {
                buf.extend_from_slice(&(*d as i32).to_le_bytes());
            }
            buf.extend_from_slice(t.name.as_bytes());
            match t.ty {
                GgmlType::F32 => slice
                    .iter()
                    .for_each(|v| buf.extend_from_slice(&v.to_le_bytes())),
                GgmlType::F16 => slice
                    .iter()
                    .for_each(|v| buf.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
                GgmlType::Q8_0 => slice
                    .chunks(row_len)
                    .for_each(|row| push_q8_0(row, &mut buf)),
            }
            out.write_all(&buf)
                .map_err(ModelError::io("<ggml output>"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_blocks_hold_a_scale_and_rounded_steps() {
        let mut row: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        row[5] = 63.5;
        let mut buf = Vec::new();
        push_q8_0(&row, &mut buf);
        assert_eq!(buf.len(), 34);
        let d = half::f16::from_le_bytes([buf[0], buf[1]]).to_f32();
        assert!((d - 0.5).abs() < 1e-3, "{d}");
        let q: Vec<i8> = buf[2..].iter().map(|b| *b as i8).collect();
        assert_eq!(q[5], 127);
        assert_eq!(q[0], -32);
        assert_eq!(q[16], 0);
        // A block of zeros has a zero scale and zero values.
        let mut zeros = Vec::new();
        push_q8_0(&[0.0; 32], &mut zeros);
        assert!(zeros.iter().all(|b| *b == 0));
        assert_eq!(file_type(Precision::Q8_0), 2007);
    }
}
