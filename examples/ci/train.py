"""Train a small classifier, save it as a bundle, and write the holdout CI validates it on.

Usage: ``python examples/ci/train.py --name churn --out build/ci [--c 1.0]``

It trains a logistic regression on scikit-learn's bundled breast-cancer data (no download), keeps
a fixed 25 % of the rows out of training as the holdout (``holdout.csv``, label column
``target``), and writes the bundle to ``OUT/bundle`` with its reference statistics. Replace the
data and the model with yours; keep the two outputs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main() -> None:
    """Parse the arguments, train, save the bundle and the holdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="churn", help="model name in the registry")
    parser.add_argument("--out", type=Path, default=Path("build/ci"), help="folder for bundle/ and holdout.csv")
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength")
    args = parser.parse_args()

    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import modelport

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    features.columns = [c.replace(" ", "_") for c in features.columns]
    x_train, x_holdout, y_train, y_holdout = train_test_split(
        features, target, test_size=0.25, random_state=0, stratify=target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.c, max_iter=1000)).fit(x_train, y_train)

    args.out.mkdir(parents=True, exist_ok=True)
    modelport.save_bundle(
        model,
        args.out / "bundle",
        name=args.name,
        sample_input=x_train.head(100),
        reference_data=x_train,
        metrics={"holdout_accuracy": float(model.score(x_holdout, y_holdout))},
        tags={"git_commit": os.environ.get("GITHUB_SHA", "local"), "training_data": "sklearn:breast_cancer"},
        description=f"logistic regression, C={args.c}",
    )
    holdout = x_holdout.assign(target=y_holdout)
    holdout.to_csv(args.out / "holdout.csv", index=False)
    print(f"bundle: {args.out / 'bundle'}  holdout: {args.out / 'holdout.csv'} ({len(holdout)} rows)")


if __name__ == "__main__":
    main()
