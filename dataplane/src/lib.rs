//! Statewall engine.
