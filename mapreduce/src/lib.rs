//! mapreduce placeholder
