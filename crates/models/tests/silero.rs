//! The Silero VAD install on the real `silero-vad` wheel: pip fetches it
//! (from pip's cache after the first run), every checksum is verified and the
//! ONNX graph becomes the ggml file whisper.cpp publishes. Loading and running
//! it in whisper.cpp is tested in the `asr` crate (`silero` module), the only
//! crate that links whisper.cpp.

use stemfeed_models::install::{Outcome, install};
use stemfeed_models::manifest::{BUILTIN, InstallSpec};
use stemfeed_models::{Manifest, ModelKind, ModelStore, silero};

fn i32_at(bytes: &[u8], pos: usize) -> i32 {
    i32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap())
}

#[test]
fn wheel_installs_as_whisper_cpps_silero_file_and_reinstall_is_a_no_op() {
    let manifest = Manifest::parse(BUILTIN).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let mut log = Vec::new();
    let outcomes = install(&store, &manifest, "silero-vad", &mut |l| {
        log.push(l.to_owned())
    })
    .unwrap_or_else(|e| panic!("install failed: {e}\n{}", log.join("\n")));
    let [Outcome::Installed(model)] = outcomes.as_slice() else {
        panic!("expected one fresh install: {outcomes:?}");
    };
    assert_eq!(model.kind, ModelKind::Vad);
    assert_eq!(model.languages(), "speech detector (VAD)");
    // The same size as whisper.cpp's ggml-silero-v6.2.0.bin, and the pinned
    // sha256 is that file's.
    assert_eq!(model.bytes, 885_098);
    let pinned = match &manifest.resolve_install("silero-vad").unwrap()[0].1 {
        InstallSpec::Vad(v) => v.ggml_sha256.clone(),
        InstallSpec::Whisper(_) => panic!("silero-vad is a VAD entry"),
    };
    assert_eq!(model.sha256, pinned);

    let bytes = std::fs::read(&model.file).unwrap();
    assert_eq!(&bytes[8..18], b"silero-16k");
    let version = (i32_at(&bytes, 18), i32_at(&bytes, 22), i32_at(&bytes, 26));
    assert_eq!(version, (6, 2, 0));
    assert_eq!((i32_at(&bytes, 30), i32_at(&bytes, 34)), (512, 64));

    let again = install(&store, &manifest, "silero-vad", &mut |_| {}).unwrap();
    assert!(
        matches!(again.as_slice(), [Outcome::AlreadyInstalled(m)] if m == model),
        "{again:?}"
    );
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, ModelKind::Vad);
}

#[test]
fn default_bundle_includes_the_vad() {
    let manifest = Manifest::parse(BUILTIN).unwrap();
    let resolved = manifest.resolve_install("default").unwrap();
    assert!(
        resolved
            .iter()
            .any(|(n, s)| n == "silero-vad" && matches!(s, InstallSpec::Vad(_)))
    );
    assert_eq!(silero::parse_version("6.2.0"), Some((6, 2, 0)));
}
