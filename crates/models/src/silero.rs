//! Silero VAD (MIT) → whisper.cpp's ggml VAD file, from the ONNX model the
//! `silero-vad` PyPI wheel ships.
//!
//! The wheel carries the weights twice: a TorchScript zip (a pickle plus
//! storages) and ONNX graphs. `silero_vad_16k_op15.onnx` holds only the
//! 16 kHz branch, with every weight a top-level initializer named after its
//! PyTorch parameter (`model.encoder.0.reparam_conv.weight`, ...) in PyTorch's
//! layout, so a few dozen lines of protobuf reading are enough; no pickle
//! machine, no `If` subgraphs, no 8 kHz weights to tell apart.
//!
//! The output follows whisper.cpp's `models/convert-silero-vad-to-ggml.py`
//! byte for byte (the pinned sha256 equals that of whisper.cpp's published
//! `ggml-silero-v6.2.0.bin`): magic `ggml`; the model type `silero-16k`
//! (length-prefixed); the model version (major, minor, patch); window 512
//! and context 64 samples; four encoder layers as (in, out, kernel); LSTM
//! input and hidden size; final conv in and out. Then 15 tensors in the
//! converter's order, named `_model.<pytorch name>`, each with n_dims, name
//! length, type (0 f32, 1 f16), dims innermost first (the PyTorch shape
//! squeezed of ones and reversed, except the STFT basis, which keeps its
//! three dims), name, data. Convolution weights and the STFT basis are f16,
//! the rest f32: whisper.cpp's loader checks every shape and byte count.

use std::io::Write;
use std::path::Path;

use crate::error::ModelError;
use crate::ggml::GgmlType;

const MAGIC: u32 = 0x6767_6d6c;
const MODEL_TYPE: &str = "silero-16k";
/// Samples per VAD frame at 16 kHz, and the context carried between frames.
const WINDOW: i32 = 512;
const CONTEXT: i32 = 64;
/// (in channels, out channels, kernel) of the four encoder convolutions.
const ENCODER: [(usize, usize, usize); 4] =
    [(129, 128, 3), (128, 64, 3), (64, 64, 3), (64, 128, 3)];
const LSTM: usize = 128;

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SileroReport {
    pub version: (i32, i32, i32),
    pub tensors: usize,
    pub bytes: u64,
}

/// One tensor of the output: the ONNX initializer it comes from, the PyTorch
/// shape it must have, and how it is stored.
struct Spec {
    onnx: String,
    shape: Vec<usize>,
    ty: GgmlType,
    /// Keep all dims (the STFT basis) instead of squeezing ones away.
    keep_dims: bool,
}

/// The 15 tensors, in the order whisper.cpp's converter writes them.
fn specs() -> Vec<Spec> {
    let mut out = Vec::new();
    let mut add = |onnx: String, shape: Vec<usize>, ty, keep_dims| {
        out.push(Spec {
            onnx,
            shape,
            ty,
            keep_dims,
        });
    };
    for (i, (cin, cout, k)) in ENCODER.iter().copied().enumerate() {
        let base = format!("model.encoder.{i}.reparam_conv");
        add(
            format!("{base}.weight"),
            vec![cout, cin, k],
            GgmlType::F16,
            false,
        );
        add(format!("{base}.bias"), vec![cout], GgmlType::F32, false);
    }
    let rnn = "model.decoder.rnn";
    add(
        format!("{rnn}.weight_ih"),
        vec![4 * LSTM, LSTM],
        GgmlType::F32,
        false,
    );
    add(
        format!("{rnn}.weight_hh"),
        vec![4 * LSTM, LSTM],
        GgmlType::F32,
        false,
    );
    add(
        format!("{rnn}.bias_ih"),
        vec![4 * LSTM],
        GgmlType::F32,
        false,
    );
    add(
        format!("{rnn}.bias_hh"),
        vec![4 * LSTM],
        GgmlType::F32,
        false,
    );
    let head = "model.decoder.decoder.2";
    add(
        format!("{head}.weight"),
        vec![1, LSTM, 1],
        GgmlType::F16,
        false,
    );
    add(format!("{head}.bias"), vec![1], GgmlType::F32, false);
    // 129 frequency bins × (real, imaginary) = 258 filters of 256 samples.
    add(
        "model.stft.forward_basis_buffer".into(),
        vec![258, 1, 256],
        GgmlType::F16,
        true,
    );
    out
}

/// Converts the ONNX file `onnx` into the ggml file `output`; `version` is the
/// Silero release (the wheel's version), recorded in the header.
pub fn convert_file(
    onnx: &Path,
    version: (i32, i32, i32),
    output: &Path,
) -> Result<SileroReport, ModelError> {
    let bytes = std::fs::read(onnx).map_err(ModelError::io(onnx))?;
    let mut out = Vec::new();
    let report = convert(&bytes, version, &mut out).map_err(|reason| ModelError::Unsupported {
        path: onnx.to_path_buf(),
        reason,
    })?;
    std::fs::write(output, &out).map_err(ModelError::io(output))?;
    Ok(report)
}

/// Parses a `major.minor.patch` release number.
pub fn parse_version(text: &str) -> Option<(i32, i32, i32)> {
    let mut parts = text.split('.').map(|p| p.parse::<i32>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

/// Converts ONNX bytes into ggml bytes written to `out`. Errors are reasons,
/// to be wrapped with the file they came from.
pub fn convert(
    onnx: &[u8],
    version: (i32, i32, i32),
    out: &mut impl Write,
) -> Result<SileroReport, String> {
    let initializers = read_initializers(onnx)?;
    let mut w = Counting {
        inner: out,
        bytes: 0,
    };
    let io = |e: std::io::Error| e.to_string();
    let i32s = |w: &mut Counting<_>, values: &[i32]| -> Result<(), String> {
        values
            .iter()
            .try_for_each(|v| w.write_all(&v.to_le_bytes()))
            .map_err(io)
    };
    w.write_all(&MAGIC.to_le_bytes()).map_err(io)?;
    i32s(&mut w, &[MODEL_TYPE.len() as i32])?;
    w.write_all(MODEL_TYPE.as_bytes()).map_err(io)?;
    i32s(&mut w, &[version.0, version.1, version.2, WINDOW, CONTEXT])?;
    i32s(&mut w, &[ENCODER.len() as i32])?;
    for (cin, cout, k) in ENCODER {
        i32s(&mut w, &[cin as i32, cout as i32, k as i32])?;
    }
    i32s(&mut w, &[LSTM as i32, LSTM as i32, LSTM as i32, 1])?;

    let specs = specs();
    for spec in &specs {
        let tensor = initializers
            .iter()
            .find(|t| t.name == spec.onnx)
            .ok_or_else(|| format!("no initializer {} in the ONNX graph", spec.onnx))?;
        if tensor.dims != spec.shape {
            return Err(format!(
                "{} has shape {:?}, expected {:?}",
                spec.onnx, tensor.dims, spec.shape
            ));
        }
        let values = tensor.values()?;
        let mut dims: Vec<usize> = if spec.keep_dims {
            spec.shape.clone()
        } else {
            spec.shape.iter().copied().filter(|&d| d != 1).collect()
        };
        dims.reverse();
        let name = format!("_{}", spec.onnx);
        i32s(
            &mut w,
            &[dims.len() as i32, name.len() as i32, spec.ty as i32],
        )?;
        i32s(&mut w, &dims.iter().map(|&d| d as i32).collect::<Vec<_>>())?;
        w.write_all(name.as_bytes()).map_err(io)?;
        let data: Vec<u8> = match spec.ty {
            GgmlType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            GgmlType::F16 => values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
            // The VAD model is small and kept exact: never quantised.
            GgmlType::Q8_0 => unreachable!("the Silero model is written in f32/f16 only"),
        };
        w.write_all(&data).map_err(io)?;
    }
    w.flush().map_err(io)?;
    Ok(SileroReport {
        version,
        tensors: specs.len(),
        bytes: w.bytes,
    })
}

struct Counting<'a, W: Write> {
    inner: &'a mut W,
    bytes: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An ONNX `TensorProto`, as far as weights need it.
#[derive(Debug, Default)]
pub struct OnnxTensor {
    pub name: String,
    pub dims: Vec<usize>,
    pub data_type: i32,
    raw_data: Vec<u8>,
    float_data: Vec<f32>,
    external: bool,
}

/// ONNX `TensorProto.DataType` values read here.
const ONNX_FLOAT: i32 = 1;
const ONNX_FLOAT16: i32 = 10;

impl OnnxTensor {
    /// The elements as f32, whichever field holds them.
    pub fn values(&self) -> Result<Vec<f32>, String> {
        let count: usize = self.dims.iter().product();
        if self.external {
            return Err(format!("{} is stored outside the ONNX file", self.name));
        }
        let values: Vec<f32> = match self.data_type {
            ONNX_FLOAT if !self.raw_data.is_empty() => self
                .raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
            ONNX_FLOAT => self.float_data.clone(),
            ONNX_FLOAT16 => self
                .raw_data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(format!(
                    "{} has ONNX data type {other}; only float and float16 are read",
                    self.name
                ));
            }
        };
        if values.len() != count {
            return Err(format!(
                "{} holds {} values for shape {:?}",
                self.name,
                values.len(),
                self.dims
            ));
        }
        Ok(values)
    }
}

/// The initializers of the main graph of an ONNX `ModelProto`.
///
/// Field numbers are those of onnx.proto: ModelProto.graph = 7,
/// GraphProto.initializer = 5, TensorProto dims = 1, data_type = 2,
/// float_data = 4, name = 8, raw_data = 9, external_data = 13,
/// data_location = 14.
pub fn read_initializers(model: &[u8]) -> Result<Vec<OnnxTensor>, String> {
    let mut graph = None;
    for field in Fields::new(model) {
        let (number, value) = field?;
        if number == 7 {
            graph = Some(value.bytes()?);
        }
    }
    let graph = graph.ok_or("not an ONNX model: no graph")?;
    let mut tensors = Vec::new();
    for field in Fields::new(graph) {
        let (number, value) = field?;
        if number == 5 {
            tensors.push(read_tensor(value.bytes()?)?);
        }
    }
    Ok(tensors)
}

fn read_tensor(bytes: &[u8]) -> Result<OnnxTensor, String> {
    let mut t = OnnxTensor::default();
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match (number, value) {
            (1, Value::Varint(d)) => t.dims.push(dim(d)?),
            (1, Value::Bytes(packed)) => {
                let mut r = Reader {
                    buf: packed,
                    pos: 0,
                };
                while !r.done() {
                    t.dims.push(dim(r.varint()?)?);
                }
            }
            (2, Value::Varint(v)) => t.data_type = v as i32,
            (4, Value::Bytes(packed)) => t.float_data.extend(
                packed
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
            ),
            (4, Value::Fixed32(v)) => t.float_data.push(f32::from_bits(v)),
            (8, Value::Bytes(name)) => {
                t.name = String::from_utf8(name.to_vec()).map_err(|_| "tensor name not UTF-8")?;
            }
            (9, Value::Bytes(raw)) => t.raw_data = raw.to_vec(),
            (13, _) => t.external = true,
            (14, Value::Varint(1)) => t.external = true,
            _ => {}
        }
    }
    Ok(t)
}

fn dim(v: u64) -> Result<usize, String> {
    // Dims are int64; a negative one arrives as a huge varint.
    usize::try_from(v)
        .ok()
        .filter(|&d| d < 1 << 32)
        .ok_or_else(|| format!("tensor dimension {} out of range", v as i64))
}

/// A protobuf field value, by wire type.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    /// Skipped: no field read here has this wire type.
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    fn bytes(self) -> Result<&'a [u8], String> {
        match self {
            Value::Bytes(b) => Ok(b),
            other => Err(format!("expected a length-delimited field, got {other:?}")),
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("field of {n} bytes runs past the end of its message"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
}

/// Iterates over the (field number, value) pairs of one protobuf message.
struct Fields<'a> {
    reader: Reader<'a>,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self {
            reader: Reader { buf, pos: 0 },
            failed: false,
        }
    }

    fn field(&mut self) -> Result<(u64, Value<'a>), String> {
        let key = self.reader.varint()?;
        let number = key >> 3;
        let value = match key & 7 {
            0 => Value::Varint(self.reader.varint()?),
            1 => {
                self.reader.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(self.reader.varint()?).map_err(|e| e.to_string())?;
                Value::Bytes(self.reader.take(len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                self.reader.take(4)?.try_into().expect("4 bytes"),
            )),
            wire => return Err(format!("unsupported protobuf wire type {wire}")),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.done() {
            return None;
        }
        let item = self.field();
        self.failed = item.is_err();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(number: u64, data: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    /// A TensorProto; `packed` chooses packed dims and float_data over
    /// unpacked dims and raw_data, the two forms exporters use.
    fn tensor(name: &str, dims: &[usize], values: &[f32], packed: bool) -> Vec<u8> {
        let mut t = Vec::new();
        if packed {
            let mut d = Vec::new();
            dims.iter().for_each(|&x| varint(x as u64, &mut d));
            bytes_field(1, &d, &mut t);
        } else {
            for &x in dims {
                varint(1 << 3, &mut t);
                varint(x as u64, &mut t);
            }
        }
        varint(2 << 3, &mut t);
        varint(ONNX_FLOAT as u64, &mut t);
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes_field(if packed { 4 } else { 9 }, &data, &mut t);
        bytes_field(8, name.as_bytes(), &mut t);
        t
    }

    /// A model whose every tensor holds its element indices / 1024 (exact in
    /// f16 for the small tensors checked below).
    fn model(skip: Option<&str>) -> Vec<u8> {
        let mut graph = Vec::new();
        bytes_field(1, b"a node, ignored", &mut graph);
        for (i, spec) in specs().iter().enumerate() {
            if Some(spec.onnx.as_str()) == skip {
                continue;
            }
            let n: usize = spec.shape.iter().product();
            let values: Vec<f32> = (0..n).map(|j| j as f32 / 1024.0).collect();
            bytes_field(
                5,
                &tensor(&spec.onnx, &spec.shape, &values, i % 2 == 0),
                &mut graph,
            );
        }
        let mut model = Vec::new();
        varint(1 << 3, &mut model); // ir_version
        varint(8, &mut model);
        bytes_field(7, &graph, &mut model);
        model
    }

    #[test]
    fn header_and_tensor_layout_follow_whisper_cpp() {
        let mut out = Vec::new();
        let report = convert(&model(None), (6, 2, 0), &mut out).unwrap();
        assert_eq!(report.tensors, 15);
        assert_eq!(report.bytes, out.len() as u64);
        let i32_at = |pos: usize| i32::from_le_bytes(out[pos..pos + 4].try_into().unwrap());
        assert_eq!(&out[..4], b"lmgg");
        assert_eq!(i32_at(4), 10);
        assert_eq!(&out[8..18], b"silero-16k");
        let header: Vec<i32> = (0..22).map(|i| i32_at(18 + 4 * i)).collect();
        assert_eq!(
            header,
            [
                6, 2, 0, 512, 64, 4, 129, 128, 3, 128, 64, 3, 64, 64, 3, 64, 128, 3, 128, 128, 128,
                1
            ]
        );
        // First tensor: encoder 0 weight, f16, dims reversed.
        let mut pos = 18 + 4 * 22;
        assert_eq!((i32_at(pos), i32_at(pos + 4), i32_at(pos + 8)), (3, 36, 1));
        assert_eq!(
            (i32_at(pos + 12), i32_at(pos + 16), i32_at(pos + 20)),
            (3, 129, 128)
        );
        pos += 24;
        assert_eq!(&out[pos..pos + 36], b"_model.encoder.0.reparam_conv.weight");
        pos += 36;
        let second = half::f16::from_le_bytes([out[pos + 2], out[pos + 3]]);
        assert_eq!(second.to_f32(), 1.0 / 1024.0);
    }

    #[test]
    fn scalar_bias_has_no_dims_and_the_stft_basis_keeps_three() {
        let mut out = Vec::new();
        convert(&model(None), (5, 1, 2), &mut out).unwrap();
        let find = |name: &[u8]| {
            out.windows(name.len())
                .position(|w| w == name)
                .expect("name present")
        };
        let i32_at = |pos: usize| i32::from_le_bytes(out[pos..pos + 4].try_into().unwrap());
        let bias = find(b"_model.decoder.decoder.2.bias");
        assert_eq!(
            (i32_at(bias - 12), i32_at(bias - 8), i32_at(bias - 4)),
            (0, 29, 0)
        );
        let stft = find(b"_model.stft.forward_basis_buffer");
        let header = stft - 24;
        assert_eq!((i32_at(header), i32_at(header + 8)), (3, 1));
        assert_eq!(
            (
                i32_at(header + 12),
                i32_at(header + 16),
                i32_at(header + 20)
            ),
            (256, 1, 258)
        );
        // The basis is the last tensor: 258 × 256 f16 values end the file.
        assert_eq!(out.len(), stft + 32 + 258 * 256 * 2);
    }

    #[test]
    fn missing_or_misshapen_weights_are_named() {
        let err = convert(
            &model(Some("model.decoder.rnn.weight_hh")),
            (6, 2, 0),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(err.contains("model.decoder.rnn.weight_hh"), "{err}");
        assert!(convert(b"\x0a\x05hello", (6, 2, 0), &mut Vec::new()).is_err());
        let truncated = &model(None)[..1000];
        assert!(convert(truncated, (6, 2, 0), &mut Vec::new()).is_err());
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("6.2.0"), Some((6, 2, 0)));
        assert_eq!(parse_version("6.2"), None);
        assert_eq!(parse_version("6.2.0.1"), None);
        assert_eq!(parse_version("6.x.0"), None);
    }
}
