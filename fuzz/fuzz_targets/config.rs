//! `cluster.toml`: dfs's `ClusterConfig` and MapReduce's `[mapreduce]` table, parsed and
//! validated; a valid config renders to TOML that parses back to the same config.
#![no_main]

use dfs::config::ClusterConfig;
use libfuzzer_sys::fuzz_target;
use mapreduce::config::{Config, MapReduceConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cluster) = ClusterConfig::parse(text) {
        let again = cluster.to_toml().unwrap();
        assert_eq!(ClusterConfig::parse(&again).unwrap(), cluster);
    }
    if let Ok(mr) = MapReduceConfig::parse(text) {
        let again = mr.to_toml().unwrap();
        assert_eq!(MapReduceConfig::parse(&again).unwrap(), mr);
    }
    let _ = Config::parse(text);
});
