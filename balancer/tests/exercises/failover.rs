//! The exercise of the chapter "lb — failover".
