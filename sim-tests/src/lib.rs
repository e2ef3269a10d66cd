//! Checkers, scenarios and tools for harrow's protocol.
