//! The Sort Benchmark jobs: teragen writes 100-byte records with 10-byte random keys,
//! terasort sorts them with total-order partitioning so the part files concatenated are
//! globally sorted, and teravalidate checks that order and sums a checksum.
//!
//! Record layout (as Hadoop's TeraGen): 10-byte key, `00 11`, the row id as 32 hex digits,
//! `88 99 AA BB`, 48 filler letters, `CC DD EE FF`.

use std::io::SeekFrom;
use std::path::PathBuf;

use mapreduce::fs::{FileSystem, LocalFs};
use mapreduce::input::Split;
use mapreduce::split::compute_splits;
use mapreduce::{
    Error, InputFormat, Job, JobConf, MapEmitter, Mapper, OutputFormat, Partitioner, Record,
    ReduceEmitter, Reducer, Result, Settings, ValueSource,
};

/// Bytes per record.
pub const RECORD_BYTES: usize = 100;
/// Bytes of the key at the front of each record.
pub const KEY_BYTES: usize = 10;
/// Keys sampled to choose partition boundaries.
pub const SAMPLE_KEYS: usize = 100_000;
/// Counter group of teragen and teravalidate.
pub const COUNTER_GROUP: &str = "TeraSort";

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Writes record number `row` into `out`. The same row always gives the same record.
pub fn make_record(row: u64, out: &mut [u8; RECORD_BYTES]) {
    let a = splitmix64(row.wrapping_mul(2));
    let b = splitmix64(row.wrapping_mul(2).wrapping_add(1));
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..10].copy_from_slice(&b.to_be_bytes()[..2]);
    out[10..12].copy_from_slice(&[0x00, 0x11]);
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (i, d) in out[12..44].iter_mut().enumerate() {
        let shift = 4 * (31 - i);
        *d = if shift >= 64 {
            b'0'
        } else {
            HEX[((row >> shift) & 0xf) as usize]
        };
    }
    out[44..48].copy_from_slice(&[0x88, 0x99, 0xAA, 0xBB]);
    for (i, d) in out[48..96].iter_mut().enumerate() {
        *d = b'A' + ((b >> (4 * (i / 4))) & 0xf) as u8;
    }
    out[96..100].copy_from_slice(&[0xCC, 0xDD, 0xEE, 0xFF]);
}

/// The checksum of one record; a dataset's checksum is the wrapping sum over its records,
/// so it does not depend on order (teragen and teravalidate print the same one).
pub fn record_checksum(record: &[u8]) -> u64 {
    u64::from(crc32fast::hash(record))
}

/// Generates records for rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct TeraGenMapper;

impl Mapper for TeraGenMapper {
    fn map(&mut self, record: Record<'_>, out: &mut dyn MapEmitter) -> Result<()> {
        let mut rec = [0u8; RECORD_BYTES];
        make_record(record.offset, &mut rec);
        out.emit(&rec[..KEY_BYTES], &rec[KEY_BYTES..]);
        out.counters()
            .incr(COUNTER_GROUP, "checksum", record_checksum(&rec));
        Ok(())
    }
}

/// The teragen job: a map-only job writing `rows` records into `maps` part files.
pub fn teragen_job(rows: u64, maps: u32, mut settings: Settings) -> Job {
    settings.reducers = 0;
    Job::new("teragen", TeraGenMapper)
        .input(InputFormat::Generated { rows, maps })
        .output(OutputFormat::Raw)
        .settings(settings)
}

/// Splits a record into key and value.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdentityMapper;

impl Mapper for IdentityMapper {
    #[inline]
    fn map(&mut self, record: Record<'_>, out: &mut dyn MapEmitter) -> Result<()> {
        out.emit(&record.value[..KEY_BYTES], &record.value[KEY_BYTES..]);
        Ok(())
    }
}

/// Writes every record back unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdentityReducer;

impl Reducer for IdentityReducer {
    #[inline]
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueSource,
        out: &mut dyn ReduceEmitter,
    ) -> Result<()> {
        while let Some(v) = values.next_value() {
            out.emit(key, v);
        }
        Ok(())
    }
}

/// Sends each key to the partition between the sampled cut points, so partition `i` holds
/// only keys below those of partition `i + 1`.
#[derive(Debug, Clone)]
pub struct TotalOrderPartitioner {
    cuts: Vec<Vec<u8>>,
}

impl TotalOrderPartitioner {
    /// A partitioner with these sorted cut points (`partitions - 1` of them).
    pub fn new(cuts: Vec<Vec<u8>>) -> Self {
        TotalOrderPartitioner { cuts }
    }

    /// Chooses `partitions - 1` cut points from a sample of keys.
    pub fn from_sample(mut sample: Vec<Vec<u8>>, partitions: u32) -> Self {
        sample.sort_unstable();
        let n = sample.len();
        let p = partitions.max(1) as usize;
        let cuts = if n == 0 {
            Vec::new()
        } else {
            (1..p)
                .map(|i| sample[(i * n / p).min(n - 1)].clone())
                .collect()
        };
        TotalOrderPartitioner { cuts }
    }
}

impl Partitioner for TotalOrderPartitioner {
    #[inline]
    fn partition(&self, key: &[u8], partitions: u32) -> u32 {
        let p = self.cuts.partition_point(|c| c.as_slice() <= key) as u32;
        p.min(partitions.saturating_sub(1))
    }
}

/// Reads up to [`SAMPLE_KEYS`] keys from up to 10 splits spread over the input.
pub fn sample_keys(
    fs: &dyn FileSystem,
    inputs: &[PathBuf],
    split_size_bytes: u64,
) -> Result<Vec<Vec<u8>>> {
    let splits = compute_splits(
        fs,
        &InputFormat::FixedLength(RECORD_BYTES),
        inputs,
        split_size_bytes,
    )?;
    let picks = splits.len().min(10);
    let per_split = SAMPLE_KEYS / picks.max(1);
    let mut keys = Vec::new();
    for i in 0..picks {
        let Split::File {
            path, start, len, ..
        } = &splits[i * splits.len() / picks]
        else {
            continue;
        };
        let want = (*len).min((per_split * RECORD_BYTES) as u64) as usize;
        let mut buf = vec![0u8; want];
        let mut f = fs.open(path)?;
        f.seek(SeekFrom::Start(*start))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| Error::io(format!("sampling {}", path.display()), e))?;
        keys.extend(
            buf.chunks_exact(RECORD_BYTES)
                .map(|r| r[..KEY_BYTES].to_vec()),
        );
    }
    Ok(keys)
}

/// Registered name of the sort job (parameter `cuts`: hex partition boundaries, comma-separated).
pub const TERASORT_JOB: &str = "terasort";
/// Registered name of teragen (parameters `rows`, `maps`).
pub const TERAGEN_JOB: &str = "teragen";
/// Registered name of teravalidate.
pub const TERAVALIDATE_JOB: &str = "teravalidate";

/// Samples `inputs` and returns the terasort job's configuration (`conf`, a configuration
/// of [`TERASORT_JOB`]) with its partition boundaries.
pub fn plan(fs: &dyn FileSystem, inputs: &[PathBuf], conf: JobConf) -> Result<JobConf> {
    // The sample's splits: the user's split size, or a block (splits are only where to look).
    let split_bytes = match conf.settings.split_size_bytes {
        0 => mapreduce::job::DEFAULT_SPLIT_SIZE_BYTES,
        n => n,
    };
    let sample = sample_keys(fs, inputs, split_bytes)?;
    let partitioner = TotalOrderPartitioner::from_sample(sample, conf.settings.reducers.max(1));
    let cuts: Vec<String> = partitioner.cuts.iter().map(|c| to_hex(c)).collect();
    Ok(conf.with("cuts", cuts.join(",")))
}

/// Rebuilds the terasort job from its configuration.
pub fn build_terasort(conf: &JobConf) -> Result<Job> {
    let text = conf.get("cuts")?;
    let cuts = text
        .split(',')
        .filter(|c| !c.is_empty())
        .map(from_hex)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::BadSetting(format!("terasort: bad partition boundaries {text:?}")))?;
    Ok(sort_job(
        TotalOrderPartitioner::new(cuts),
        conf.settings.clone(),
    ))
}

/// Rebuilds teragen from its configuration.
pub fn build_teragen(conf: &JobConf) -> Result<Job> {
    let maps = u32::try_from(conf.get_u64("maps")?)
        .map_err(|_| Error::BadSetting("teragen: too many maps".into()))?;
    Ok(teragen_job(
        conf.get_u64("rows")?,
        maps,
        conf.settings.clone(),
    ))
}

/// Rebuilds teravalidate from its configuration.
pub fn build_teravalidate(conf: &JobConf) -> Result<Job> {
    Ok(teravalidate_job(conf.settings.clone()))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The terasort job with partition boundaries sampled from local `inputs`.
pub fn terasort_job(inputs: &[PathBuf], settings: Settings) -> Result<Job> {
    build_terasort(&plan(
        &LocalFs,
        inputs,
        JobConf::new(TERASORT_JOB, settings),
    )?)
}

fn sort_job(partitioner: TotalOrderPartitioner, settings: Settings) -> Job {
    Job::new("terasort", IdentityMapper)
        .reducer(IdentityReducer)
        .partitioner(partitioner)
        .input(InputFormat::FixedLength(RECORD_BYTES))
        .output(OutputFormat::Raw)
        .settings(settings)
}

/// Per split: first and last key, record count, checksum, and the first misorder seen.
#[derive(Debug, Clone, Default)]
pub struct ValidateMapper {
    first: Option<(Vec<u8>, String, u64)>,
    last: Vec<u8>,
    count: u64,
    checksum: u64,
    error: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Mapper for ValidateMapper {
    fn map(&mut self, record: Record<'_>, _out: &mut dyn MapEmitter) -> Result<()> {
        let key = &record.value[..KEY_BYTES];
        if self.first.is_none() {
            self.first = Some((key.to_vec(), record.file.to_owned(), record.offset));
        } else if key < self.last.as_slice() && self.error.is_none() {
            self.error = Some(format!(
                "misorder in {} at offset {}: key {} after {}",
                record.file,
                record.offset,
                hex(key),
                hex(&self.last)
            ));
        }
        self.last.clear();
        self.last.extend_from_slice(key);
        self.count += 1;
        self.checksum = self.checksum.wrapping_add(record_checksum(record.value));
        Ok(())
    }

    fn cleanup(&mut self, out: &mut dyn MapEmitter) -> Result<()> {
        let Some((first, file, offset)) = &self.first else {
            return Ok(());
        };
        // Keys sort by file name, then offset: the order the part files are read in.
        let key = format!("{file}\0{offset:020}");
        let mut v = Vec::with_capacity(2 * KEY_BYTES + 16);
        v.extend_from_slice(first);
        v.extend_from_slice(&self.last);
        v.extend_from_slice(&self.count.to_le_bytes());
        v.extend_from_slice(&self.checksum.to_le_bytes());
        v.extend_from_slice(self.error.as_deref().unwrap_or("").as_bytes());
        out.emit(key.as_bytes(), &v);
        Ok(())
    }
}

/// Checks the splits' boundaries against each other and writes the verdict.
#[derive(Debug, Clone, Default)]
pub struct ValidateReducer {
    last: Option<(Vec<u8>, String)>,
    count: u64,
    checksum: u64,
    errors: u64,
}

impl Reducer for ValidateReducer {
    fn reduce(
        &mut self,
        key: &[u8],
        values: &mut dyn ValueSource,
        out: &mut dyn ReduceEmitter,
    ) -> Result<()> {
        let split = String::from_utf8_lossy(key).replace('\0', "@");
        while let Some(v) = values.next_value() {
            if v.len() < 2 * KEY_BYTES + 16 {
                return Err(Error::user(format!("bad teravalidate summary for {split}")));
            }
            let (first, rest) = v.split_at(KEY_BYTES);
            let (last, rest) = rest.split_at(KEY_BYTES);
            let (count, rest) = rest.split_at(8);
            let (sum, error) = rest.split_at(8);
            if let Some((prev, prev_split)) = &self.last {
                if first < prev.as_slice() {
                    self.errors += 1;
                    let msg = format!(
                        "misorder between {prev_split} and {split}: key {} after {}",
                        hex(first),
                        hex(prev)
                    );
                    out.emit(b"error", msg.as_bytes());
                }
            }
            if !error.is_empty() {
                self.errors += 1;
                out.emit(b"error", error);
            }
            self.last = Some((last.to_vec(), split.clone()));
            self.count += u64::from_le_bytes(count.try_into().unwrap_or_default());
            self.checksum = self
                .checksum
                .wrapping_add(u64::from_le_bytes(sum.try_into().unwrap_or_default()));
        }
        Ok(())
    }

    fn cleanup(&mut self, out: &mut dyn ReduceEmitter) -> Result<()> {
        out.emit(b"records", self.count.to_string().as_bytes());
        out.emit(b"checksum", format!("{:x}", self.checksum).as_bytes());
        out.counters().incr(COUNTER_GROUP, "misorders", self.errors);
        Ok(())
    }
}

/// The teravalidate job (one reducer sees every split's summary in order).
pub fn teravalidate_job(mut settings: Settings) -> Job {
    settings.reducers = 1;
    settings.combiner_enabled = false;
    Job::new("teravalidate", ValidateMapper::default())
        .reducer(ValidateReducer::default())
        .input(InputFormat::FixedLength(RECORD_BYTES))
        .settings(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_deterministic_and_well_formed() {
        let mut a = [0u8; RECORD_BYTES];
        let mut b = [0u8; RECORD_BYTES];
        make_record(12345, &mut a);
        make_record(12345, &mut b);
        assert_eq!(a, b);
        assert_eq!(&a[12..44], b"00000000000000000000000000003039");
        assert_eq!(&a[96..], &[0xCC, 0xDD, 0xEE, 0xFF]);
        make_record(12346, &mut b);
        assert_ne!(a[..KEY_BYTES], b[..KEY_BYTES]);
    }

    #[test]
    fn total_order_partitions_are_monotonic() {
        let sample: Vec<Vec<u8>> = (0..1000u32)
            .map(|i| (i * 7919 % 1000).to_be_bytes().to_vec())
            .collect();
        let p = TotalOrderPartitioner::from_sample(sample, 4);
        let mut last = 0;
        for i in 0..1000u32 {
            let part = p.partition(&i.to_be_bytes(), 4);
            assert!(part >= last && part < 4);
            last = part;
        }
        assert_eq!(last, 3);
    }
}
