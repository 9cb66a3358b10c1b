//! engauge-gen: realistic synthetic event streams.
