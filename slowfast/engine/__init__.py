"""The train and test loops (one place for every task), and what they share."""
