//! Placeholder: rendering a message to fax pages.
