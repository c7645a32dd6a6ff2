//! Placeholder: fax users and groups.
