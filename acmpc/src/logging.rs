//! Training logs: a CSV file (one row per PPO update) and a TensorBoard event file with the same
//! scalars (TFRecord framing with masked CRC-32C, `Event{wall_time, step, summary{value{tag,
//! simple_value}}}` encoded by hand; no TensorFlow or protobuf dependency).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(((field as u64) << 3) | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Encodes one `tensorflow.Event` with `wall_time`, `step` and either `file_version` or a
/// summary of scalar values.
fn encode_event(wall_time: f64, step: i64, file_version: Option<&str>, scalars: &[(&str, f32)]) -> Vec<u8> {
    let mut ev = Vec::new();
    ev.push((1 << 3) | 1); // wall_time: double
    ev.extend_from_slice(&wall_time.to_le_bytes());
    varint((2 << 3) as u64, &mut ev); // step: int64 varint
    varint(step as u64, &mut ev);
    if let Some(v) = file_version {
        field_bytes(3, v.as_bytes(), &mut ev);
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, value) in scalars {
            let mut val = Vec::new();
            field_bytes(1, tag.as_bytes(), &mut val);
            val.push((2 << 3) | 5); // simple_value: float
            val.extend_from_slice(&value.to_le_bytes());
            field_bytes(1, &val, &mut summary);
        }
        field_bytes(5, &summary, &mut ev);
    }
    ev
}

/// Writes TensorBoard `events.out.tfevents.*` files.
pub struct TensorBoardWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl TensorBoardWriter {
    /// Creates a new event file in `dir`.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!("events.out.tfevents.{}.{host}.{}", now.as_secs(), std::process::id()));
        let mut w = Self { out: BufWriter::new(File::create(&path)?), path };
        w.record(&encode_event(now.as_secs_f64(), 0, Some("brain.Event:2"), &[]))?;
        Ok(w)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked_crc(&len).to_le_bytes())?;
        self.out.write_all(data)?;
        self.out.write_all(&masked_crc(data).to_le_bytes())?;
        Ok(())
    }

    /// Appends scalars at `step` and flushes.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> std::io::Result<()> {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let vals: Vec<(&str, f32)> = values.iter().filter(|(_, v)| v.is_finite()).map(|(k, v)| (*k, *v as f32)).collect();
        self.record(&encode_event(wall, step as i64, None, &vals))?;
        self.out.flush()
    }
}

/// Appends rows to a CSV file with a fixed header (written when the file is new or empty).
pub struct CsvLog {
    out: BufWriter<File>,
    columns: Vec<String>,
}

impl CsvLog {
    /// Opens `path` for appending (a resumed run continues the same file). A file written by an
    /// older version whose header is a prefix of `columns` gets the new header (its old rows
    /// then read the new columns as empty); any other header is an error naming both.
    pub fn open(path: &Path, columns: &[&str]) -> std::io::Result<Self> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let fresh = std::fs::metadata(path).map(|m| m.len() == 0).unwrap_or(true);
        if !fresh {
            let text = std::fs::read_to_string(path)?;
            let (head, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
            let old: Vec<&str> = head.split(',').collect();
            if old != columns {
                if old.len() < columns.len() && columns[..old.len()] == old[..] {
                    let tmp = path.with_extension("csv.tmp");
                    std::fs::write(&tmp, format!("{}\n{rest}", columns.join(",")))?;
                    std::fs::rename(tmp, path)?;
                } else {
                    return Err(std::io::Error::other(format!(
                        "{}: header `{head}` does not match the columns `{}`",
                        path.display(),
                        columns.join(",")
                    )));
                }
            }
        }
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        let mut log = Self { out: BufWriter::new(f), columns: columns.iter().map(|s| s.to_string()).collect() };
        if fresh {
            writeln!(log.out, "{}", columns.join(","))?;
            log.out.flush()?;
        }
        Ok(log)
    }

    /// Writes one row; `values` must follow the column order.
    pub fn row(&mut self, values: &[f64]) -> std::io::Result<()> {
        assert_eq!(values.len(), self.columns.len(), "CSV row length");
        let line: Vec<String> = values
            .iter()
            .map(|v| if v.is_finite() { format!("{v}") } else { String::new() })
            .collect();
        writeln!(self.out, "{}", line.join(","))?;
        self.out.flush()
    }
}

/// Drops the rows whose first column (the update number) exceeds `last`: a run resumed from an
/// earlier checkpoint re-does those updates and must not log them twice.
pub fn truncate_after(path: &Path, last: u64) -> std::io::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        let keep = i == 0 || line.split(',').next().and_then(|c| c.parse::<f64>().ok()).is_none_or(|u| u <= last as f64);
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    let tmp = path.with_extension("csv.tmp");
    std::fs::write(&tmp, out)?;
    std::fs::rename(tmp, path)
}

/// Reads a CSV written by [`CsvLog`] back as columns (empty cells are NaN).
pub fn read_csv(path: &Path) -> std::io::Result<(Vec<String>, Vec<Vec<f64>>)> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap_or("").split(',').map(|s| s.to_string()).collect();
    let mut cols = vec![Vec::new(); header.len()];
    for line in lines {
        // Rows written before a column was added are shorter: their missing cells are NaN.
        let mut cells = line.split(',');
        for col in cols.iter_mut() {
            col.push(cells.next().and_then(|c| c.parse().ok()).unwrap_or(f64::NAN));
        }
    }
    Ok((header, cols))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_older_header_is_extended_and_a_different_one_refused() {
        let dir = std::env::temp_dir().join(format!("csvlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("train.csv");
        std::fs::write(&p, "a,b\n1,2\n").unwrap();
        let mut log = CsvLog::open(&p, &["a", "b", "c"]).unwrap();
        log.row(&[3.0, 4.0, 5.0]).unwrap();
        drop(log);
        let (header, cols) = read_csv(&p).unwrap();
        assert_eq!(header, ["a", "b", "c"]);
        assert_eq!(cols[0], [1.0, 3.0]);
        assert!(cols[2][0].is_nan() && cols[2][1] == 5.0);
        let err = CsvLog::open(&p, &["x", "y"]).err().unwrap().to_string();
        assert!(err.contains("does not match"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use super::*;

    #[test]
    fn crc_and_varint_match_known_values() {
        // CRC-32C("123456789") = 0xE3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let mut v = Vec::new();
        varint(300, &mut v);
        assert_eq!(v, vec![0xAC, 0x02]);
    }

    #[test]
    fn event_file_frames_records() {
        let dir = std::env::temp_dir().join(format!("acmpc-tb-{}", std::process::id()));
        let mut w = TensorBoardWriter::create(&dir).unwrap();
        w.scalars(5, &[("train/return", 1.5)]).unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        // Walk the records: each is len(8) crc(4) data crc(4), and the CRCs check out.
        let mut off = 0;
        let mut n = 0;
        while off < bytes.len() {
            let len = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap()) as usize;
            assert_eq!(u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()), masked_crc(&bytes[off..off + 8]));
            let data = &bytes[off + 12..off + 12 + len];
            assert_eq!(u32::from_le_bytes(bytes[off + 12 + len..off + 16 + len].try_into().unwrap()), masked_crc(data));
            off += 16 + len;
            n += 1;
        }
        assert_eq!(n, 2);
        assert!(bytes.windows(12).any(|w| w == b"train/return"));
        std::fs::remove_dir_all(dir).ok();
    }
}
