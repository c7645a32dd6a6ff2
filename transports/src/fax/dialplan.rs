//! Placeholder: the dial plan.
