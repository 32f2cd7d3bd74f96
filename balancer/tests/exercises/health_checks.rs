//! The exercise of the chapter "lb — health checks".
