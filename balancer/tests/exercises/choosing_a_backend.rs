//! The exercise of the chapter "lb — choosing a backend".
