//! The engauge command line.

fn main() {}
