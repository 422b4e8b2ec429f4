"""Write penguins.csv from the copy the palmerpenguins package ships (run once; not a runtime dependency).

pip install palmerpenguins==0.1.6 && python examples/data/export_penguins.py
"""

import shutil
from importlib.resources import files
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    source = files("palmerpenguins") / "data" / "penguins.csv"
    with source.open("rb") as data, (HERE / "penguins.csv").open("wb") as out:
        shutil.copyfileobj(data, out)  # byte for byte: "NA" marks a missing value, which pandas reads as one


if __name__ == "__main__":
    main()
