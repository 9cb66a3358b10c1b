//! Segments: allowlisted dimensions, group-by sets, and the per-dimension value cap.

/// The value a dimension takes once it has `max_values` distinct values.
pub const OTHER_VALUE: &str = "__other__";
/// The value of a dimension the event does not carry.
pub const NONE_VALUE: &str = "__none__";
