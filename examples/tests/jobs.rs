//! Every example job against a simple reference implementation written here, on seeded
//! random corpora, across splits, sort buffers, combiner on/off and reducer counts.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use common::*;
use examples::tokenize::is_delimiter;
use examples::{grep, invertedindex, terasort, wordcount};
use mapreduce::{run_local, RunOptions, Settings};

fn read_all(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn reference_wordcount(contents: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut counts: HashMap<&[u8], u64> = HashMap::new();
    for c in contents {
        for w in c.split(|&b| is_delimiter(b)).filter(|w| !w.is_empty()) {
            *counts.entry(w).or_default() += 1;
        }
    }
    let mut lines: Vec<Vec<u8>> = counts
        .into_iter()
        .map(|(w, n)| [w, b"\t", n.to_string().as_bytes()].concat())
        .collect();
    lines.sort();
    lines
}

/// The setting combinations every job is checked under.
fn matrix() -> Vec<Settings> {
    let base = Settings {
        sync_output: false,
        ..Settings::default()
    };
    let mk = |split: u64, buf: usize, comb: bool, reducers: u32, threads: usize, merge: usize| {
        Settings {
            split_size_bytes: split,
            sort_buffer_bytes: buf,
            combiner_enabled: comb,
            reducers,
            threads,
            merge_factor: merge,
            ..base.clone()
        }
    };
    vec![
        mk(64 << 20, 100 << 20, true, 1, 2, 64),
        mk(64 << 20, 100 << 20, false, 1, 1, 64),
        // Many tiny splits: records cross split boundaries everywhere.
        mk(97, 1 << 20, true, 3, 3, 64),
        mk(13, 1 << 20, false, 2, 2, 64),
        // A tiny sort buffer: every map spills many times, merges take several passes.
        mk(4096, 1024, true, 5, 2, 3),
        mk(4096, 1024, false, 5, 2, 3),
        mk(1 << 20, 2048, false, 1, 2, 2),
    ]
}

#[test]
fn wordcount_matches_reference() {
    let seed = seed("wordcount_matches_reference");
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(&dir.path().join("in"), &mut rng(seed), 6, 120);
    let want = reference_wordcount(&read_all(&files));
    assert!(want.len() > 50, "corpus too small to test anything");
    for (i, s) in matrix().into_iter().enumerate() {
        let out = dir.path().join(format!("out{i}"));
        let report = run_local(
            &wordcount::job(s.clone()),
            &[dir.path().join("in")],
            &out,
            &RunOptions::default(),
        )
        .unwrap_or_else(|e| panic!("seed {seed} settings {s:?}: {e}"));
        assert_eq!(
            sorted_output_lines(&out),
            want,
            "seed {seed} settings {s:?}"
        );
        let parts = part_files(&out).len();
        assert_eq!(parts, s.reducers as usize);
        assert!(out.join("_SUCCESS").exists());
        assert!(!out.join("_temporary").exists());
        let c = &report.counters.task;
        assert_eq!(c.reduce_input_groups as usize, want.len(), "settings {s:?}");
        assert_eq!(c.output_records as usize, want.len());
        if s.sort_buffer_bytes <= 2048 {
            assert!(
                c.spills > report.counters.map_tasks,
                "tiny buffer must spill more than once per map: {c:?}"
            );
        }
        if s.combiner_enabled {
            assert!(c.combine_output_records < c.combine_input_records, "{c:?}");
        } else {
            assert_eq!(c.combine_input_records, 0);
            assert_eq!(c.reduce_input_records, c.map_output_records);
        }
    }
}

fn reference_grep(contents: &[Vec<u8>], pattern: &str) -> Vec<u8> {
    let re = regex::bytes::Regex::new(pattern).unwrap();
    let mut counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for c in contents {
        for piece in c.split_inclusive(|&b| b == b'\n') {
            let line = piece.strip_suffix(b"\n").unwrap_or(piece);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            for m in re.find_iter(line) {
                *counts.entry(m.as_bytes().to_vec()).or_default() += 1;
            }
        }
    }
    let mut rows: Vec<(u64, Vec<u8>)> = counts.into_iter().map(|(m, n)| (n, m)).collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    rows.iter()
        .flat_map(|(n, m)| [n.to_string().as_bytes(), b"\t", m, b"\n"].concat())
        .collect()
}

#[test]
fn grep_matches_reference_sorted_by_count() {
    let seed = seed("grep_matches_reference_sorted_by_count");
    let dir = tempfile::tempdir().unwrap();
    let files = write_corpus(&dir.path().join("in"), &mut rng(seed), 4, 80);
    let contents = read_all(&files);
    for pattern in [r"w1\d*", r"w[0-9]+\xff?", r"é,x|w7"] {
        let want = reference_grep(&contents, pattern);
        assert!(!want.is_empty());
        for (i, s) in matrix().into_iter().enumerate().step_by(2) {
            let out = dir.path().join(format!("g{}-{i}", pattern.len()));
            grep::run(
                &mapreduce::Engine::Local,
                pattern,
                &[dir.path().join("in")],
                &out,
                mapreduce::JobConf::new(grep::COUNT_JOB, s.clone()),
                &RunOptions::default(),
            )
            .unwrap_or_else(|e| panic!("seed {seed} {s:?}: {e}"));
            let parts = part_files(&out);
            assert_eq!(parts.len(), 1);
            assert_eq!(
                std::fs::read(&parts[0]).unwrap(),
                want,
                "seed {seed} pattern {pattern} {s:?}"
            );
        }
    }
}

#[test]
fn invertedindex_matches_reference() {
    let seed = seed("invertedindex_matches_reference");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let files = write_corpus(&input, &mut rng(seed), 5, 60);
    let mut index: BTreeMap<Vec<u8>, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        for w in std::fs::read(f)
            .unwrap()
            .split(|&b| is_delimiter(b))
            .filter(|w| !w.is_empty())
        {
            index.entry(w.to_vec()).or_default().insert(name.clone());
        }
    }
    let mut want: Vec<Vec<u8>> = index
        .into_iter()
        .map(|(w, fs)| {
            [
                w.as_slice(),
                b"\t",
                fs.into_iter().collect::<Vec<_>>().join(",").as_bytes(),
            ]
            .concat()
        })
        .collect();
    want.sort();
    for (i, s) in matrix().into_iter().enumerate() {
        let out = dir.path().join(format!("out{i}"));
        run_local(
            &invertedindex::job(s.clone()),
            std::slice::from_ref(&input),
            &out,
            &RunOptions::default(),
        )
        .unwrap();
        assert_eq!(sorted_output_lines(&out), want, "seed {seed} {s:?}");
    }
}

fn concat_parts(out: &Path) -> Vec<u8> {
    part_files(out)
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

#[test]
fn terasort_output_is_globally_sorted_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let gen = dir.path().join("gen");
    let rows = 20_000;
    let s = Settings {
        sync_output: false,
        threads: 2,
        ..Settings::default()
    };
    let report = run_local(
        &terasort::teragen_job(rows, 3, s.clone()),
        &[],
        &gen,
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(report.counters.task.output_records, rows);
    let input = concat_parts(&gen);
    assert_eq!(input.len() as u64, rows * 100);
    let mut want: Vec<&[u8]> = input.chunks_exact(100).collect();
    want.sort_by(|a, b| a[..10].cmp(&b[..10]));
    let want: Vec<u8> = want.concat();
    for (i, (reducers, buf, split)) in [
        (1, 100 << 20, 64 << 20),
        (4, 4096, 33_333),
        (7, 1 << 20, 100_000),
    ]
    .into_iter()
    .enumerate()
    {
        let s = Settings {
            reducers,
            sort_buffer_bytes: buf,
            split_size_bytes: split,
            ..s.clone()
        };
        let sorted = dir.path().join(format!("sorted{i}"));
        let job = terasort::terasort_job(std::slice::from_ref(&gen), s.clone()).unwrap();
        run_local(
            &job,
            std::slice::from_ref(&gen),
            &sorted,
            &RunOptions::default(),
        )
        .unwrap();
        assert_eq!(part_files(&sorted).len(), reducers as usize);
        assert!(
            concat_parts(&sorted) == want,
            "terasort output differs from the sorted input ({s:?})"
        );
        let v = dir.path().join(format!("valid{i}"));
        let r = run_local(
            &terasort::teravalidate_job(s.clone()),
            &[sorted],
            &v,
            &RunOptions::default(),
        )
        .unwrap();
        let text = std::fs::read_to_string(v.join("part-r-00000")).unwrap();
        assert!(!text.contains("error"), "{text}");
        assert!(text.contains(&format!("records\t{rows}\n")), "{text}");
        assert_eq!(r.counters.get(terasort::COUNTER_GROUP, "misorders"), 0);
        let gen_sum = report.counters.get(terasort::COUNTER_GROUP, "checksum");
        assert!(text.contains(&format!("checksum\t{gen_sum:x}\n")), "{text}");
    }
}

#[test]
fn teravalidate_rejects_unsorted_output() {
    let dir = tempfile::tempdir().unwrap();
    let s = Settings {
        sync_output: false,
        reducers: 3,
        ..Settings::default()
    };
    let gen = dir.path().join("gen");
    run_local(
        &terasort::teragen_job(3000, 2, s.clone()),
        &[],
        &gen,
        &RunOptions::default(),
    )
    .unwrap();
    let sorted = dir.path().join("sorted");
    let job = terasort::terasort_job(std::slice::from_ref(&gen), s.clone()).unwrap();
    run_local(
        &job,
        std::slice::from_ref(&gen),
        &sorted,
        &RunOptions::default(),
    )
    .unwrap();
    // Swap two records inside one part file.
    let part = part_files(&sorted)[1].clone();
    let mut bytes = std::fs::read(&part).unwrap();
    let (a, b) = bytes.split_at_mut(100);
    a.swap_with_slice(&mut b[..100]);
    std::fs::write(&part, &bytes).unwrap();
    let v = dir.path().join("v1");
    let r = run_local(
        &terasort::teravalidate_job(s.clone()),
        std::slice::from_ref(&sorted),
        &v,
        &RunOptions::default(),
    )
    .unwrap();
    assert!(r.counters.get(terasort::COUNTER_GROUP, "misorders") >= 1);
    assert!(std::fs::read_to_string(v.join("part-r-00000"))
        .unwrap()
        .contains("error\tmisorder in part-r-00001"));
    // Restore it, then put the part files out of order: a misorder between files.
    a_restore(&part, &bytes);
    let p0 = part_files(&sorted)[0].clone();
    let p2 = part_files(&sorted)[2].clone();
    let tmp = dir.path().join("swap");
    std::fs::rename(&p0, &tmp).unwrap();
    std::fs::rename(&p2, &p0).unwrap();
    std::fs::rename(&tmp, &p2).unwrap();
    let v = dir.path().join("v2");
    let r = run_local(
        &terasort::teravalidate_job(s),
        &[sorted],
        &v,
        &RunOptions::default(),
    )
    .unwrap();
    assert!(r.counters.get(terasort::COUNTER_GROUP, "misorders") >= 1);
    assert!(std::fs::read_to_string(v.join("part-r-00000"))
        .unwrap()
        .contains("misorder between"));
}

fn a_restore(part: &Path, swapped: &[u8]) {
    let mut bytes = swapped.to_vec();
    let (a, b) = bytes.split_at_mut(100);
    a.swap_with_slice(&mut b[..100]);
    std::fs::write(part, &bytes).unwrap();
}

#[test]
fn map_only_and_empty_files_produce_empty_parts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("empty"), b"").unwrap();
    let out = dir.path().join("out");
    let s = Settings {
        reducers: 2,
        sync_output: false,
        ..Settings::default()
    };
    let r = run_local(&wordcount::job(s), &[input], &out, &RunOptions::default()).unwrap();
    assert_eq!(names_in(&out), ["_SUCCESS", "part-r-00000", "part-r-00001"]);
    assert!(sorted_output_lines(&out).is_empty());
    assert_eq!(r.counters.map_tasks, 0);
}
