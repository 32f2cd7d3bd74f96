//! The exercise of the chapter "lb — more than one".
