//! engauge-codec: bytes to core events and core snapshots to bytes.
