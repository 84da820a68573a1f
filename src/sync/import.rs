//! Import ("Import from Salesforce", being written).

/// Imports started through the API.
#[derive(Debug, Default)]
pub struct Imports {}
