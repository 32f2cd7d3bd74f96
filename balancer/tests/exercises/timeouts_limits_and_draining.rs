//! The exercise of the chapter "lb — timeouts limits and draining".
