//! Placeholder: recipient address forms that are fax numbers.
