//! Push: payloads for local changes bound for Salesforce (being written).
