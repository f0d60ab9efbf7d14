"""Train one model on one QM9 target: `python train.py model=edge_net target=mu` (same as `mpnn-train`)."""

from mpnn.cli.train import main

if __name__ == "__main__":
    main()
