//! Reader for CTranslate2's `model.bin`.
//!
//! Layout (little-endian), as written by CTranslate2's `specs/model_spec.py`:
//! `u32` format version; spec name as `u16` length + bytes incl. NUL; `u32`
//! spec revision; `u32` variable count; per variable: name, `u8` rank, `rank`
//! × `u32` dims, `u8` dtype, `u32` byte count, raw data; then `u32` alias count
//! and (alias, target) name pairs.
//!
//! The reader indexes the file without loading tensor data, so a multi-GB
//! model costs no memory until a tensor is read, and a truncated file is
//! reported with the first variable that does not fit.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::ModelError;

/// Element type codes used by CTranslate2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl DType {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// One variable's place in the file.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    offset: u64,
    len: u64,
}

impl Variable {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An indexed `model.bin`.
#[derive(Debug)]
pub struct Ct2Model {
    path: PathBuf,
    pub version: u32,
    pub spec: String,
    pub revision: u32,
    variables: BTreeMap<String, Variable>,
    aliases: BTreeMap<String, String>,
}

/// Oldest and newest binary format versions this reader understands.
const FORMAT_VERSIONS: std::ops::RangeInclusive<u32> = 5..=6;
const MAX_RANK: u8 = 8;

impl Ct2Model {
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let file = File::open(path).map_err(ModelError::io(path))?;
        let file_len = file.metadata().map_err(ModelError::io(path))?.len();
        let mut r = Cursor {
            inner: BufReader::new(file),
            path,
            file_len,
            pos: 0,
        };
        let not_ct2 = |reason: String| ModelError::NotCt2 {
            path: path.to_path_buf(),
            reason,
        };
        if file_len < 4 {
            return Err(not_ct2(format!("only {file_len} bytes")));
        }
        let version = r.u32("format version")?;
        if !FORMAT_VERSIONS.contains(&version) {
            return Err(not_ct2(format!(
                "format version {version}, expected {}..={}",
                FORMAT_VERSIONS.start(),
                FORMAT_VERSIONS.end()
            )));
        }
        let spec = r.string("spec name")?;
        if spec != "WhisperSpec" {
            return Err(ModelError::WrongSpec {
                path: path.to_path_buf(),
                found: spec,
            });
        }
        let revision = r.u32("spec revision")?;
        let count = r.u32("variable count")?;
        let mut variables = BTreeMap::new();
        for index in 0..count {
            let name = r.string(&format!("name of variable {index}"))?;
            let rank = r.u8(&name)?;
            if rank > MAX_RANK {
                return Err(not_ct2(format!("variable {name} has rank {rank}")));
            }
            let mut shape = Vec::with_capacity(rank as usize);
            for _ in 0..rank {
                shape.push(r.u32(&name)? as usize);
            }
            let code = r.u8(&name)?;
            let dtype = DType::from_code(code)
                .ok_or_else(|| not_ct2(format!("variable {name} has unknown dtype {code}")))?;
            let len = u64::from(r.u32(&name)?);
            let expected = shape.iter().product::<usize>() as u64 * dtype.size() as u64;
            if len != expected {
                return Err(not_ct2(format!(
                    "variable {name} holds {len} bytes, its shape {shape:?} of {dtype:?} needs {expected}"
                )));
            }
            let offset = r.pos;
            r.skip(len, &name)?;
            variables.insert(
                name.clone(),
                Variable {
                    name,
                    shape,
                    dtype,
                    offset,
                    len,
                },
            );
        }
        let mut aliases = BTreeMap::new();
        // Format 6 always writes the alias table, possibly empty.
        let alias_count = r.u32("alias count")?;
        for _ in 0..alias_count {
            let alias = r.string("alias name")?;
            let target = r.string(&format!("target of alias {alias}"))?;
            aliases.insert(alias, target);
        }
        Ok(Self {
            path: path.to_path_buf(),
            version,
            spec,
            revision,
            variables,
            aliases,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.variables.values()
    }

    pub fn variable_count(&self) -> usize {
        self.variables.len()
    }

    /// Looks a variable up by name, following the alias table.
    pub fn get(&self, name: &str) -> Option<&Variable> {
        self.variables.get(name).or_else(|| {
            self.aliases
                .get(name)
                .and_then(|target| self.variables.get(target))
        })
    }

    /// Looks a variable up or fails naming it.
    pub fn require(&self, name: &str) -> Result<&Variable, ModelError> {
        self.get(name).ok_or_else(|| ModelError::Unsupported {
            path: self.path.clone(),
            reason: format!("variable {name} is missing"),
        })
    }

    /// Reads a scalar integer (CTranslate2 stores attributes such as
    /// `encoder/num_heads` as rank-0 variables).
    pub fn scalar_int(&self, name: &str) -> Result<Option<i64>, ModelError> {
        let Some(var) = self.get(name) else {
            return Ok(None);
        };
        let bytes = self.read(var)?;
        let value = match (var.dtype, bytes.as_slice()) {
            (DType::I8, [b]) => i64::from(*b as i8),
            (DType::I16, [a, b]) => i64::from(i16::from_le_bytes([*a, *b])),
            (DType::I32, [a, b, c, d]) => i64::from(i32::from_le_bytes([*a, *b, *c, *d])),
            _ => {
                return Err(ModelError::Unsupported {
                    path: self.path.clone(),
                    reason: format!("{name} is not an integer scalar"),
                });
            }
        };
        Ok(Some(value))
    }

    /// Reads one variable's raw little-endian bytes.
    pub fn read(&self, var: &Variable) -> Result<Vec<u8>, ModelError> {
        let mut file = File::open(&self.path).map_err(ModelError::io(&self.path))?;
        file.seek(SeekFrom::Start(var.offset))
            .map_err(ModelError::io(&self.path))?;
        let mut buf = vec![0u8; var.len as usize];
        file.read_exact(&mut buf)
            .map_err(ModelError::io(&self.path))?;
        Ok(buf)
    }

    /// Reads a variable as f32 values whatever its float storage type.
    pub fn read_f32(&self, var: &Variable) -> Result<Vec<f32>, ModelError> {
        let bytes = self.read(var)?;
        let values = match var.dtype {
            DType::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::Bf16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::I8 | DType::I16 | DType::I32 => {
                return Err(ModelError::Unsupported {
                    path: self.path.clone(),
                    reason: format!(
                        "{} is stored as {:?}: quantized CTranslate2 models cannot be imported; \
                         use a float16 or float32 export",
                        var.name, var.dtype
                    ),
                });
            }
        };
        Ok(values)
    }
}

/// Position-tracking reader that turns a short read into [`ModelError::Truncated`].
struct Cursor<'a> {
    inner: BufReader<File>,
    path: &'a Path,
    file_len: u64,
    pos: u64,
}

impl Cursor<'_> {
    fn truncated(&self, what: &str, need: u64) -> ModelError {
        ModelError::Truncated {
            path: self.path.to_path_buf(),
            detail: format!("{what} needs {need} bytes at offset {}", self.pos),
            file_len: self.file_len,
        }
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ModelError> {
        if self.pos + N as u64 > self.file_len {
            return Err(self.truncated(what, N as u64));
        }
        let mut buf = [0u8; N];
        self.inner
            .read_exact(&mut buf)
            .map_err(ModelError::io(self.path))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ModelError> {
        Ok(self.bytes::<1>(what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, ModelError> {
        let len = u64::from(u16::from_le_bytes(self.bytes(what)?));
        if self.pos + len > self.file_len {
            return Err(self.truncated(what, len));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(ModelError::io(self.path))?;
        self.pos += len;
        if buf.last() == Some(&0) {
            buf.pop();
        }
        String::from_utf8(buf).map_err(|_| ModelError::NotCt2 {
            path: self.path.to_path_buf(),
            reason: format!("{what} is not UTF-8"),
        })
    }

    fn skip(&mut self, len: u64, what: &str) -> Result<(), ModelError> {
        if self.pos + len > self.file_len {
            return Err(self.truncated(&format!("data of variable {what}"), len));
        }
        self.inner
            .seek_relative(len as i64)
            .map_err(ModelError::io(self.path))?;
        self.pos += len;
        Ok(())
    }
}

/// Writes a CTranslate2 `model.bin` from (name, shape, dtype, bytes). Used by
/// tests to build small models and broken files.
#[doc(hidden)]
pub fn write_for_tests(
    spec: &str,
    variables: &[(&str, &[usize], u8, &[u8])],
    aliases: &[(&str, &str)],
) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&6u32.to_le_bytes());
    string(&mut out, spec);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(variables.len() as u32).to_le_bytes());
    for (name, shape, dtype, data) in variables {
        string(&mut out, name);
        out.push(shape.len() as u8);
        for d in *shape {
            out.extend_from_slice(&(*d as u32).to_le_bytes());
        }
        out.push(*dtype);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
    for (a, t) in aliases {
        string(&mut out, a);
        string(&mut out, t);
    }
    out
}
