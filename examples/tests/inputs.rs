//! The everyday job surface as a user meets it through `mrjob`: several inputs and glob
//! patterns, compressed input and output, and `-D key=value` properties. Real processes on
//! real files; compressed files are made in the test with the same crates users' tools match.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{names_in, part_files, rng, seed, sorted_output_lines, write_corpus};

fn mrjob(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mrjob"))
        .args(args)
        .current_dir(cwd)
        .env_remove("MRJOB_CONF")
        .output()
        .expect("run mrjob")
}

fn must_succeed(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mrjob failed: {stderr}");
    stderr
}

/// Asserts exit status 1 with one `mrjob: error:` line containing every needle.
fn assert_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mrjob: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected: {stderr}");
    for n in needles {
        assert!(errors[0].contains(n), "error should name {n:?}: {stderr}");
    }
}

#[derive(Clone, Copy, Debug)]
enum Codec {
    Gzip,
    Bzip2,
    Zstd,
}

const CODECS: [Codec; 3] = [Codec::Gzip, Codec::Bzip2, Codec::Zstd];

impl Codec {
    fn ext(self) -> &'static str {
        match self {
            Codec::Gzip => "gz",
            Codec::Bzip2 => "bz2",
            Codec::Zstd => "zst",
        }
    }

    /// Compresses as the command-line tools do (gzip, bzip2, zstd with a checksum).
    fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Codec::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Codec::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Codec::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
                e.include_checksum(true).unwrap();
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    fn decompress(self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Codec::Gzip => flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out),
            Codec::Bzip2 => bzip2::read::MultiBzDecoder::new(data).read_to_end(&mut out),
            Codec::Zstd => zstd::stream::read::Decoder::new(data)
                .unwrap()
                .read_to_end(&mut out),
        }
        .unwrap();
        out
    }
}

/// Writes a compressed copy of every file of `from` into `to` (`name.ext`).
fn compress_dir(from: &[PathBuf], to: &Path, codec: Codec) {
    std::fs::create_dir_all(to).unwrap();
    for f in from {
        let name = format!(
            "{}.{}",
            f.file_name().unwrap().to_string_lossy(),
            codec.ext()
        );
        std::fs::write(to.join(name), codec.compress(&std::fs::read(f).unwrap())).unwrap();
    }
}

/// The bytes of every part file of `out`, in name order.
fn part_bytes(out: &Path) -> Vec<Vec<u8>> {
    part_files(out)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// The number after `Launched map tasks=` in a job report.
fn maps_launched(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Launched map tasks="))
        .unwrap_or_else(|| panic!("no map count in: {stderr}"));
    line.parse().unwrap()
}

// Checks G7: compressed input is read as the text it holds, never as binary "words".
#[test]
fn gzip_bzip2_and_zstd_inputs_give_the_plain_files_output() {
    let seed = seed("gzip_bzip2_and_zstd_inputs_give_the_plain_files_output");
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(&dir.path().join("plain"), &mut rng(seed), 5, 300);
    must_succeed(&mrjob(
        &["wordcount", "-q", "-r", "3", "plain", "want"],
        dir.path(),
    ));
    let want = part_bytes(&dir.path().join("want"));
    assert_eq!(want.len(), 3);
    for codec in CODECS {
        let packed = format!("in-{}", codec.ext());
        compress_dir(&files, &dir.path().join(&packed), codec);
        let out = format!("out-{}", codec.ext());
        must_succeed(&mrjob(
            &["wordcount", "-q", "-r", "3", &packed, &out],
            dir.path(),
        ));
        assert_eq!(
            part_bytes(&dir.path().join(&out)),
            want,
            "seed {seed} {codec:?}"
        );
    }
}

#[test]
fn a_compressed_file_is_one_split_however_small_the_split_size() {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("word{} other\n", i % 97).into_bytes())
        .collect();
    std::fs::write(dir.path().join("big.txt"), &text).unwrap();
    std::fs::create_dir(dir.path().join("gz")).unwrap();
    std::fs::write(
        dir.path().join("gz/big.txt.gz"),
        Codec::Gzip.compress(&text),
    )
    .unwrap();
    let plain = must_succeed(&mrjob(
        &["wordcount", "--split-size", "4KiB", "big.txt", "plain"],
        dir.path(),
    ));
    assert!(maps_launched(&plain) > 10, "{plain}");
    let packed = must_succeed(&mrjob(
        &["wordcount", "--split-size", "4KiB", "gz", "packed"],
        dir.path(),
    ));
    assert_eq!(maps_launched(&packed), 1, "{packed}");
    assert_eq!(
        sorted_output_lines(&dir.path().join("packed")),
        sorted_output_lines(&dir.path().join("plain"))
    );
}

// Checks G7: a corrupt or truncated compressed file fails the job, naming the file, and
// leaves no output (never a silent short read).
#[test]
fn corrupt_and_truncated_compressed_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<u8> = (0..5_000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    for codec in CODECS {
        let packed = codec.compress(&text);
        let truncated = format!("cut.txt.{}", codec.ext());
        std::fs::write(dir.path().join(&truncated), &packed[..packed.len() * 2 / 3]).unwrap();
        let out = mrjob(&["wordcount", &truncated, "out"], dir.path());
        assert_error(&out, &[&truncated]);
        assert!(!dir.path().join("out").exists(), "{codec:?}: output left");
    }
    std::fs::write(dir.path().join("notreally.gz"), b"plain words, not gzip\n").unwrap();
    let out = mrjob(&["wordcount", "notreally.gz", "out"], dir.path());
    assert_error(&out, &["notreally.gz"]);
    assert!(!dir.path().join("out").exists());
}

// Checks G7: a pattern that matches nothing is an error naming it.
#[test]
fn several_inputs_and_glob_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |p: &str, text: &str| {
        let path = d.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("logs/2026-01/a.txt", "jan jan\n");
    write("logs/2026-01/_SUCCESS", "hidden\n");
    write("logs/2026-02/b.txt", "feb\n");
    write("logs/2025-12/c.txt", "dec\n");
    write("logs/2026-03/d.log", "skipped\n");
    write("extra.txt", "extra jan\n");
    std::fs::write(
        d.join("logs/2026-02/e.txt.gz"),
        Codec::Gzip.compress(b"packed feb\n"),
    )
    .unwrap();
    must_succeed(&mrjob(
        &[
            "wordcount",
            "-q",
            "logs/2026-0[12]/*.{txt,gz}",
            "extra.txt",
            "logs/2025-12",
            "out",
        ],
        d,
    ));
    let lines = sorted_output_lines(&d.join("out"));
    let want: Vec<&[u8]> = vec![b"dec\t1", b"extra\t1", b"feb\t2", b"jan\t3", b"packed\t1"];
    assert_eq!(lines, want);

    // File names a mapper sees are relative to the pattern's directory part.
    must_succeed(&mrjob(&["invertedindex", "-q", "logs/*/*.txt", "index"], d));
    let index = sorted_output_lines(&d.join("index"));
    assert!(
        index.contains(&b"jan\t2026-01/a.txt".to_vec()),
        "{:?}",
        index
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
    );

    let out = mrjob(&["wordcount", "logs/2027-*/*.txt", "extra.txt", "none"], d);
    assert_error(&out, &["logs/2027-*/*.txt", "matches 0 files"]);
    assert!(!d.join("none").exists());
    let out = mrjob(&["wordcount", "logs/[2026", "none"], d);
    assert_error(&out, &["logs/[2026", "bad pattern"]);
    // Hadoop's grep takes a comma-separated list; a {a,b} pattern keeps its comma.
    must_succeed(&mrjob(
        &["grep", "logs/{2025-12,2026-02},extra.txt", "g", "[a-z]+"],
        d,
    ));
    let grep = std::fs::read_to_string(d.join("g/part-r-00000")).unwrap();
    assert_eq!(grep, "2\tfeb\n1\tdec\n1\textra\n1\tjan\n1\tpacked\n");
}

#[test]
fn compressed_output_decompresses_to_the_plain_output_and_reads_back() {
    let seed = seed("compressed_output_decompresses_to_the_plain_output_and_reads_back");
    let dir = tempfile::tempdir().unwrap();
    write_corpus(&dir.path().join("in"), &mut rng(seed), 4, 200);
    must_succeed(&mrjob(
        &["wordcount", "-q", "-r", "2", "in", "plain"],
        dir.path(),
    ));
    let want = part_bytes(&dir.path().join("plain"));
    must_succeed(&mrjob(
        &["wordcount", "-q", "plain", "again-plain"],
        dir.path(),
    ));
    let hadoop = [
        ("gz", "-Dmapreduce.output.fileoutputformat.compress.codec=GzipCodec"),
        (
            "bz2",
            "-Dmapreduce.output.fileoutputformat.compress.codec=org.apache.hadoop.io.compress.BZip2Codec",
        ),
        (
            "zst",
            "-Dmapreduce.output.fileoutputformat.compress.codec=org.apache.hadoop.io.compress.ZStandardCodec",
        ),
    ];
    for (codec, (ext, define)) in CODECS.into_iter().zip(hadoop) {
        let out = format!("packed-{ext}");
        must_succeed(&mrjob(
            &[
                "wordcount",
                "-q",
                "-r",
                "2",
                "in",
                &out,
                "-D",
                "mapreduce.output.fileoutputformat.compress=true",
                define,
            ],
            dir.path(),
        ));
        let names = names_in(&dir.path().join(&out));
        assert_eq!(
            names,
            [
                "_SUCCESS".to_string(),
                format!("part-r-00000.{ext}"),
                format!("part-r-00001.{ext}")
            ]
        );
        let got: Vec<Vec<u8>> = part_bytes(&dir.path().join(&out))
            .iter()
            .map(|b| codec.decompress(b))
            .collect();
        assert_eq!(got, want, "seed {seed} {codec:?}");
        // Read back as input: the same as reading the plain output.
        let again = format!("again-{ext}");
        must_succeed(&mrjob(&["wordcount", "-q", &out, &again], dir.path()));
        assert_eq!(
            sorted_output_lines(&dir.path().join(&again)),
            sorted_output_lines(&dir.path().join("again-plain")),
            "{codec:?}"
        );
    }
    // The plain flag; compress=true alone means gzip.
    must_succeed(&mrjob(
        &[
            "wordcount",
            "-q",
            "-r",
            "1",
            "in",
            "flag",
            "--compress",
            "bzip2",
        ],
        dir.path(),
    ));
    assert!(dir.path().join("flag/part-r-00000.bz2").exists());
    // "Bytes written" counts what reached the file (compressed), as Hadoop's does.
    let log = must_succeed(&mrjob(
        &[
            "wordcount",
            "-r",
            "1",
            "in",
            "counted",
            "--compress",
            "bzip2",
        ],
        dir.path(),
    ));
    let written: u64 = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("Bytes written="))
        .unwrap_or_else(|| panic!("no Bytes written counter: {log}"))
        .parse()
        .unwrap();
    let file = std::fs::metadata(dir.path().join("counted/part-r-00000.bz2")).unwrap();
    assert_eq!(written, file.len(), "{log}");
    must_succeed(&mrjob(
        &[
            "wordcount",
            "-q",
            "-r",
            "1",
            "in",
            "dflt",
            "-Dmapred.output.compress=true",
        ],
        dir.path(),
    ));
    assert!(dir.path().join("dflt/part-r-00000.gz").exists());
}

// Checks G7: a bad -D key or value is an error naming the key, before anything runs.
#[test]
fn bad_defines_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "a b\n").unwrap();
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["-D", "mapreduce.job.reduce=2"],
            &["mapreduce.job.reduce", "did you mean mapreduce.job.reduces"],
        ),
        (
            &["-D", "mapreduce.job.reduces=two"],
            &["mapreduce.job.reduces=two"],
        ),
        (
            &["-Dmapreduce.map.maxattempts=0"],
            &["mapreduce.map.maxattempts=0"],
        ),
        (
            &[
                "-D",
                "mapreduce.output.fileoutputformat.compress.codec=SnappyCodec",
            ],
            &["compress.codec", "SnappyCodec"],
        ),
        (&["-D", "no-equals-sign"], &["no-equals-sign", "key=value"]),
    ];
    for (define, needles) in cases {
        let mut args = vec!["wordcount", "a.txt", "out"];
        args.extend_from_slice(define);
        let out = mrjob(&args, dir.path());
        assert_error(&out, needles);
        assert!(!dir.path().join("out").exists());
    }
    let out = mrjob(
        &["wordcount", "a.txt", "out", "--compress", "lz4"],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lz4"));
}

#[test]
fn job_name_and_split_hints_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    // 12 MiB: the local runner cuts it so that both threads have work.
    let line = b"the quick brown fox jumps over the lazy dog\n";
    let text: Vec<u8> = line.repeat((12 << 20) / line.len());
    std::fs::write(dir.path().join("big.txt"), &text).unwrap();
    let stderr = must_succeed(&mrjob(
        &[
            "wordcount",
            "-t",
            "2",
            "big.txt",
            "auto",
            "-D",
            "mapreduce.job.name=nightly count",
        ],
        dir.path(),
    ));
    assert!(stderr.contains("Job nightly count completed"), "{stderr}");
    assert!(maps_launched(&stderr) >= 2, "{stderr}");
    // A maps hint asks for about that many splits; a minimum split size caps their number.
    let stderr = must_succeed(&mrjob(
        &["wordcount", "big.txt", "hint", "-Dmapreduce.job.maps=6"],
        dir.path(),
    ));
    assert_eq!(maps_launched(&stderr), 6, "{stderr}");
    let stderr = must_succeed(&mrjob(
        &[
            "wordcount",
            "big.txt",
            "min",
            "-Dmapreduce.job.maps=6",
            "-Dmapreduce.input.fileinputformat.split.minsize=8388608",
        ],
        dir.path(),
    ));
    assert_eq!(maps_launched(&stderr), 2, "{stderr}");
    assert_eq!(
        sorted_output_lines(&dir.path().join("min")),
        sorted_output_lines(&dir.path().join("auto"))
    );
}

#[test]
fn generators_and_validators_take_properties_and_compression() {
    let dir = tempfile::tempdir().unwrap();
    // As Hadoop's teragen, mapreduce.job.maps sets the number of maps (output files).
    must_succeed(&mrjob(
        &["teragen", "3000", "gen", "-Dmapreduce.job.maps=3", "-q"],
        dir.path(),
    ));
    let parts = part_files(&dir.path().join("gen"));
    assert_eq!(parts.len(), 3, "{parts:?}");
    must_succeed(&mrjob(
        &["terasort", "gen/part-m-*", "sorted", "-r", "2", "-q"],
        dir.path(),
    ));
    // A compressed report is read back for the verdict.
    let out = mrjob(
        &[
            "teravalidate",
            "sorted",
            "valid",
            "--compress",
            "zstd",
            "-q",
        ],
        dir.path(),
    );
    must_succeed(&out);
    assert!(dir.path().join("valid/part-r-00000.zst").exists());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("OK: 3000 records"), "{stdout}");
}
