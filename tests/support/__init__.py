"""What the tests share: tiny models, synthetic MNIST, toy exact-posterior networks, runs, served apps and browsers."""
