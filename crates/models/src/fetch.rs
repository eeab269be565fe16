//! `models fetch`: official ggml files, for machines with internet.
//!
//! Downloads stream to a temporary file in the models directory while being
//! hashed; only a file whose sha256 and size match the manifest is renamed
//! into place. Offline the connection fails within seconds and the error says
//! which offline path to use instead.

use std::io::{Read, Write};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::ModelError;
use crate::ggml::HParams;
use crate::hashing::hex;
use crate::manifest::Manifest;
use crate::store::{InstalledModel, ModelStore, validate_name};

/// Overrides the manifest's download base URL (mirrors, tests).
pub const ENV_BASE_URL: &str = "STEMFEED_GGML_BASE_URL";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A stalled transfer is abandoned after this long without progress.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

pub fn fetch(
    store: &ModelStore,
    manifest: &Manifest,
    name: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<InstalledModel, ModelError> {
    validate_name(name)?;
    let spec = manifest.ggml_model(name)?;
    let _lock = store.lock()?;
    if let Some(existing) = store.get(name)?
        && existing.sha256 == spec.sha256
        && store.verify(&existing)?
    {
        return Ok(existing);
    }
    let base = std::env::var(ENV_BASE_URL).unwrap_or_else(|_| manifest.ggml.base_url.clone());
    let url = format!("{}/ggml-{name}.bin", base.trim_end_matches('/'));
    let download_err = |reason: String| ModelError::Download {
        url: url.clone(),
        reason,
    };

    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_body(Some(READ_TIMEOUT))
        .build();
    let agent: ureq::Agent = config.into();
    let response = agent
        .get(&url)
        .call()
        .map_err(|e| download_err(e.to_string()))?;
    let mut body = response
        .into_body()
        .into_with_config()
        .limit(spec.bytes + 1)
        .reader();

    let scratch = store.scratch_dir(&format!("fetch-{name}"))?;
    let tmp = scratch.join("model.ggml");
    let result = (|| {
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(ModelError::io(&tmp))?);
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = body
                .read(&mut buf)
                .map_err(|e| download_err(e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(ModelError::io(&tmp))?;
            total += n as u64;
            progress(total, spec.bytes);
        }
        file.flush().map_err(ModelError::io(&tmp))?;
        let actual = hex(&hasher.finalize());
        if actual != spec.sha256 || total != spec.bytes {
            return Err(ModelError::Checksum {
                what: format!("{url} ({total} bytes, expected {})", spec.bytes),
                expected: spec.sha256.clone(),
                actual,
            });
        }
        let hparams = read_hparams(&tmp)?;
        store.commit(name, &tmp, &hparams, url.clone())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Reads the hyper-parameters from a ggml file's header.
pub fn read_hparams(path: &std::path::Path) -> Result<HParams, ModelError> {
    let mut header = [0u8; 48];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(ModelError::io(path))?;
    let field = |i: usize| {
        i32::from_le_bytes(header[i * 4..i * 4 + 4].try_into().expect("4 bytes")) as usize
    };
    if field(0) != 0x6767_6d6c {
        return Err(ModelError::Unsupported {
            path: path.to_path_buf(),
            reason: "not a ggml Whisper file (bad magic)".into(),
        });
    }
    Ok(HParams {
        n_vocab: field(1),
        n_audio_ctx: field(2),
        n_audio_state: field(3),
        n_audio_head: field(4),
        n_audio_layer: field(5),
        n_text_ctx: field(6),
        n_text_state: field(7),
        n_text_head: field(8),
        n_text_layer: field(9),
        n_mels: field(10),
    })
}
