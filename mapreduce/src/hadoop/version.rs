//! `hadoop version`: what tools that drive Hadoop read to decide which arguments to pass.
//!
//! Yelp's mrjob takes the first number on the first line (`^.*?(\d|\.)+`) and, for versions
//! 2 and later ("uses YARN"), calls `fs -ls -R`, `fs -mkdir -p` and `fs -rm -R -f
//! -skipTrash`, the forms `mrjob hadoop fs` understands; so the line names a Hadoop 3 release.

/// The Hadoop release whose command-line behaviour `mrjob hadoop` follows.
pub const HADOOP_VERSION: &str = "3.3.6";

/// The text `hadoop version` prints.
pub fn text() -> String {
    format!(
        "Hadoop {HADOOP_VERSION}\n\
         Compatible front door of mrjob {}: `fs` runs on dfs, `jar` runs Streaming jobs\n\
         This command was run using mrjob's built-in Hadoop front door\n",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mrjob's rule: the first run of digits and dots on the first line is the version.
    fn version_as_mrjob_reads_it(text: &str) -> String {
        let first = text.lines().next().unwrap();
        let start = first
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap();
        first[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect()
    }

    #[test]
    fn mrjob_reads_a_yarn_version() {
        let v = version_as_mrjob_reads_it(&text());
        assert_eq!(v, HADOOP_VERSION);
        assert!(v.split('.').next().unwrap().parse::<u32>().unwrap() >= 2);
    }
}
