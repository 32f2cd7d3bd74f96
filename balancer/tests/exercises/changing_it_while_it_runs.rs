//! The exercise of the chapter "lb — changing it while it runs".
