//! The outbox worker: local changes to Salesforce (being written).
