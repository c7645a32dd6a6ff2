//! Placeholder: the simulated engine (spandsp over a simulated line).
