//! Compressed job input and output: Hadoop's codecs, chosen by file extension when reading
//! and by name when writing.
//!
//! A compressed input file cannot be cut (none of these formats can be entered in the
//! middle without an index), so it is one split, read from its start through the decoder; a
//! job's output is compressed on request (`-D mapreduce.output.fileoutputformat.compress=true`
//! or `--compress`), and its part files get the codec's extension, so that reading them back
//! as input decompresses them again.
//!
//! Decoders read every member (gzip), stream (bzip2) or frame (zstd) of a file, as the
//! `cat`-ed concatenations these tools produce are valid files; a file that ends early or does
//! not decode is an error, never a short read that would quietly drop records.

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fs::OutputSink;

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Codec {
    /// gzip (`.gz`), Hadoop's `GzipCodec`; the default codec of compressed output.
    Gzip,
    /// bzip2 (`.bz2`), Hadoop's `BZip2Codec`.
    Bzip2,
    /// Zstandard (`.zst`), Hadoop's `ZStandardCodec`.
    Zstd,
    /// A zlib stream (`.deflate`), Hadoop's `DefaultCodec`: what Hadoop writes when
    /// compression is on and no codec is named, kept so those files read back here.
    Deflate,
}

/// Every codec, for lookups and messages.
const CODECS: [Codec; 4] = [Codec::Gzip, Codec::Bzip2, Codec::Zstd, Codec::Deflate];

/// zstd's default level: a good ratio at a speed close to gzip's fastest.
const ZSTD_LEVEL: i32 = 3;

impl Codec {
    /// The codec of a file, by its extension; `None` for a file read as it is.
    pub fn of_path(path: &Path) -> Option<Codec> {
        let ext = path.extension()?.to_str()?;
        CODECS.into_iter().find(|c| c.extension() == ext)
    }

    /// The extension (without the dot) of files in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Gzip => "gz",
            Codec::Bzip2 => "bz2",
            Codec::Zstd => "zst",
            Codec::Deflate => "deflate",
        }
    }

    /// The short name (`gzip`, `bzip2`, `zstd`, `deflate`), as `--compress` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Bzip2 => "bzip2",
            Codec::Zstd => "zstd",
            Codec::Deflate => "deflate",
        }
    }

    /// Hadoop's class name of the codec.
    pub fn hadoop_class(self) -> &'static str {
        match self {
            Codec::Gzip => "org.apache.hadoop.io.compress.GzipCodec",
            Codec::Bzip2 => "org.apache.hadoop.io.compress.BZip2Codec",
            Codec::Zstd => "org.apache.hadoop.io.compress.ZStandardCodec",
            Codec::Deflate => "org.apache.hadoop.io.compress.DefaultCodec",
        }
    }

    /// The codec named `name`: a short name, an extension, or Hadoop's class name (with or
    /// without its package), case-insensitive.
    pub fn from_name(name: &str) -> Result<Codec> {
        let want = name.trim().to_ascii_lowercase();
        let class = |c: Codec| c.hadoop_class().to_ascii_lowercase();
        CODECS
            .into_iter()
            .find(|&c| {
                want == c.name()
                    || want == c.extension()
                    || want == class(c)
                    || class(c).rsplit('.').next() == Some(want.as_str())
            })
            .ok_or_else(|| {
                let known: Vec<&str> = CODECS.iter().map(|c| c.name()).collect();
                Error::BadSetting(format!(
                    "unknown compression codec {name:?} (known: {}, or their Hadoop class names)",
                    known.join(", ")
                ))
            })
    }

    /// `input` decompressed: every member, stream or frame in turn.
    pub fn decoder<'a>(self, input: impl Read + Send + 'a) -> Box<dyn Read + Send + 'a> {
        match self {
            Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
            Codec::Zstd => match zstd::stream::read::Decoder::new(input) {
                Ok(d) => Box::new(d),
                // Only allocating the decompression context can fail here; the read reports it.
                Err(e) => Box::new(FailingRead(Some(e))),
            },
            Codec::Deflate => Box::new(flate2::read::ZlibDecoder::new(input)),
        }
    }

    /// An output file that compresses what is written to `sink`; its `finish` ends the
    /// compressed stream before finishing the file.
    pub fn encoder(self, sink: Box<dyn OutputSink>) -> std::io::Result<Box<dyn OutputSink>> {
        let level = flate2::Compression::default();
        Ok(match self {
            Codec::Gzip => Box::new(flate2::write::GzEncoder::new(sink, level)),
            Codec::Bzip2 => Box::new(bzip2::write::BzEncoder::new(
                sink,
                bzip2::Compression::default(),
            )),
            Codec::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(sink, ZSTD_LEVEL)?;
                // As the zstd tool does: a frame checksum, so corruption is an error on read.
                enc.include_checksum(true)?;
                Box::new(enc)
            }
            Codec::Deflate => Box::new(flate2::write::ZlibEncoder::new(sink, level)),
        })
    }
}

/// A reader whose first read fails with a kept error.
struct FailingRead(Option<std::io::Error>);

impl Read for FailingRead {
    fn read(&mut self, _buf: &mut [u8]) -> std::io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| std::io::Error::other("decoder unavailable")))
    }
}

/// Ends an encoder's stream, then finishes the file under it.
macro_rules! finishing_encoder {
    ($ty:ty, $finish:expr) => {
        impl OutputSink for $ty {
            fn finish(self: Box<Self>, sync: bool) -> std::io::Result<()> {
                let inner: Box<dyn OutputSink> = $finish(*self)?;
                inner.finish(sync)
            }
        }
    };
}

finishing_encoder!(
    flate2::write::GzEncoder<Box<dyn OutputSink>>,
    flate2::write::GzEncoder::finish
);
finishing_encoder!(
    flate2::write::ZlibEncoder<Box<dyn OutputSink>>,
    flate2::write::ZlibEncoder::finish
);
finishing_encoder!(
    bzip2::write::BzEncoder<Box<dyn OutputSink>>,
    bzip2::write::BzEncoder::finish
);
finishing_encoder!(
    zstd::stream::write::Encoder<'static, Box<dyn OutputSink>>,
    zstd::stream::write::Encoder::finish
);

/// Compresses `data` into memory (tests and tools that build compressed inputs).
pub fn compress_bytes(codec: Codec, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut enc = codec.encoder(Box::new(MemorySink(out.clone())))?;
    enc.write_all(data)?;
    enc.finish(false)?;
    let bytes = std::mem::take(&mut *dfs::lock::lock(&out));
    Ok(bytes)
}

/// An [`OutputSink`] into shared memory.
struct MemorySink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for MemorySink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        dfs::lock::lock(&self.0).extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl OutputSink for MemorySink {
    fn finish(self: Box<Self>, _sync: bool) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(codec: Codec, data: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        codec.decoder(data).read_to_end(&mut out)?;
        Ok(out)
    }

    fn text() -> Vec<u8> {
        (0..20_000u32)
            .flat_map(|i| format!("line {i} of {}\n", i * 7919 % 1000).into_bytes())
            .collect()
    }

    #[test]
    fn codecs_by_extension_and_by_name() {
        assert_eq!(Codec::of_path(Path::new("a/b.txt.gz")), Some(Codec::Gzip));
        assert_eq!(Codec::of_path(Path::new("b.bz2")), Some(Codec::Bzip2));
        assert_eq!(Codec::of_path(Path::new("b.zst")), Some(Codec::Zstd));
        assert_eq!(Codec::of_path(Path::new("b.deflate")), Some(Codec::Deflate));
        assert_eq!(Codec::of_path(Path::new("b.gzip")), None);
        assert_eq!(Codec::of_path(Path::new("gz")), None);
        for c in CODECS {
            assert_eq!(Codec::from_name(c.name()).unwrap(), c);
            assert_eq!(Codec::from_name(c.hadoop_class()).unwrap(), c);
        }
        assert_eq!(Codec::from_name("GzipCodec").unwrap(), Codec::Gzip);
        assert_eq!(Codec::from_name("ZSTD").unwrap(), Codec::Zstd);
        let err = Codec::from_name("org.apache.hadoop.io.compress.SnappyCodec").unwrap_err();
        assert!(err.to_string().contains("SnappyCodec"), "{err}");
    }

    #[test]
    fn every_codec_round_trips_and_reads_concatenated_streams() {
        let data = text();
        for c in CODECS {
            let packed = compress_bytes(c, &data).unwrap();
            assert!(packed.len() < data.len() / 2, "{c:?} did not compress");
            assert_eq!(decode(c, &packed).unwrap(), data, "{c:?}");
            if c == Codec::Deflate {
                continue; // a zlib stream has a single member
            }
            // Two files `cat`-ed together are one valid file holding both.
            let mut two = packed.clone();
            two.extend(compress_bytes(c, b"tail\n").unwrap());
            let mut want = data.clone();
            want.extend_from_slice(b"tail\n");
            assert_eq!(decode(c, &two).unwrap(), want, "{c:?} concatenated");
        }
    }

    // Checks G7: a truncated or corrupt compressed file is an error, never a short read.
    #[test]
    fn truncated_and_corrupt_files_are_errors() {
        let data = text();
        for c in CODECS {
            let packed = compress_bytes(c, &data).unwrap();
            for cut in [packed.len() / 2, packed.len() - 3] {
                assert!(
                    decode(c, &packed[..cut]).is_err(),
                    "{c:?} cut at {cut} of {} read without error",
                    packed.len()
                );
            }
            let mut flipped = packed.clone();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0x55;
            flipped[mid + 1] ^= 0xaa;
            assert!(decode(c, &flipped).is_err(), "{c:?} corrupt read");
            assert!(decode(c, b"plain text, not compressed\n").is_err(), "{c:?}");
        }
    }
}
