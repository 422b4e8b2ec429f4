"""Write the bundled example CSVs from the copies scikit-learn ships (run once; not a runtime dependency).

pip install scikit-learn==1.9.1 && python examples/data/export_from_sklearn.py
"""

from pathlib import Path

from sklearn.datasets import load_diabetes, load_digits

HERE = Path(__file__).parent


def main() -> None:
    digits = load_digits(as_frame=True).frame
    digits = digits.rename(columns={"target": "label"})
    digits.to_csv(HERE / "digits.csv", index=False, float_format="%g")

    diabetes = load_diabetes(as_frame=True, scaled=False).frame
    diabetes = diabetes.rename(columns={"target": "progression"})
    diabetes.to_csv(HERE / "diabetes.csv", index=False, float_format="%g")


if __name__ == "__main__":
    main()
