//! The inbox worker: pending notifications to batched pulls (being written).
