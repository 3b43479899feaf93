"""Reference values for tests/test_cox_efron.py: lifelines CoxPHFitter (Efron ties).

lifelines is the independent implementation of the Cox model that cnsvol's Efron fit
(statsmodels ``PHReg(..., ties="efron")``) is checked against. It cannot be installed in the
project's environment (it needs pandas < 3), so run this script in a separate one:

    python3 -m venv /tmp/llvenv
    /tmp/llvenv/bin/pip install lifelines
    /tmp/llvenv/bin/python tests/data/make_cox_reference.py

and paste its output into ``LIFELINES`` of tests/test_cox_efron.py. ``DATA`` below is copied
there too; a test checks that the two copies are equal (it reads this file without importing
lifelines, which is imported only when the script runs). Each data set has one binary
covariate, as cnsvol uses it: responder (1) vs non-responder (0), with heavily tied
visit-based PFS times and censoring tied with events.

Printed per data set: coef (log HR), HR = exp(coef), se(coef) from the observed information,
the 95% Wald limits of the HR exp(coef -/+ z_0.975 se), the Wald p (chi-square of
(coef / se)^2 on 1 df) and the log partial likelihood at the maximum. No log-rank test: only
the Cox fit is referenced here.

Fitted twice: with lifelines' default convergence options and with tight ones (precision and
r_precision 1e-20, so that Newton-Raphson runs until its step is at rounding level). The tight
fit is the one printed. lifelines' default stop (relative change of the log-likelihood below
1e-9, or Newton decrement below 1e-7, the last step not applied) can leave coef ~1e-6 short of
the maximum: p of visits_24 differs by 1.5e-6 and of three_visits_40 by 5.6e-6 (relative),
too much for a 1e-6 reference. The largest relative default-vs-tight difference is printed as
a comment, and the script stops if it exceeds 1e-4.

Produced with lifelines 0.30.3, pandas 2.3.3, numpy 2.4.6, scipy 1.17.1 (Python 3.11.7).
"""

from __future__ import annotations

import sys

# (time in days, event 1 = progression / 0 = censored, responder 1 / 0)
DATA = {
    # Scans every 56 days: progression seen at days 56/112/168/224, censoring at the same days.
    "visits_24": [
        (56, 1, 1), (112, 1, 1), (112, 1, 1), (112, 0, 1), (168, 1, 1), (168, 1, 1),
        (168, 0, 1), (224, 1, 1), (224, 0, 1), (224, 0, 1),
        (56, 1, 0), (56, 1, 0), (56, 1, 0), (56, 1, 0), (56, 0, 0), (112, 1, 0), (112, 1, 0),
        (112, 1, 0), (112, 0, 0), (168, 1, 0), (168, 1, 0), (168, 0, 0), (224, 1, 0),
        (224, 0, 0),
    ],
    # Only three visit days, 40 subjects: up to 9 progressions share one day; everyone left is
    # censored at the last visit (day 168).
    "three_visits_40": [
        *[(56, 1, 1)] * 3, *[(56, 0, 1)] * 1, *[(112, 1, 1)] * 4, *[(112, 0, 1)] * 2,
        *[(168, 1, 1)] * 3, *[(168, 0, 1)] * 5,
        *[(56, 1, 0)] * 9, *[(56, 0, 0)] * 1, *[(112, 1, 0)] * 5, *[(112, 0, 0)] * 1,
        *[(168, 1, 0)] * 4, *[(168, 0, 0)] * 2,
    ],
    # Small, partly off-schedule times (an unscheduled scan at day 84, a death at day 30),
    # ties at 56, 112 and 168 across both groups, censoring at an event day.
    "small_12": [
        (30, 1, 0), (56, 1, 0), (56, 1, 1), (56, 0, 0), (84, 1, 1), (112, 1, 0), (112, 1, 1),
        (112, 1, 0), (140, 0, 1), (168, 1, 1), (168, 1, 0), (200, 0, 1),
    ],
}

TIGHT = {"precision": 1e-20, "r_precision": 1e-20, "max_steps": 500}


def fit(rows, fit_options=None):
    import pandas as pd
    from lifelines import CoxPHFitter

    df = pd.DataFrame(rows, columns=["time", "event", "responder"])
    cph = CoxPHFitter()  # Efron ties, no penalizer, alpha 0.05
    cph.fit(df, duration_col="time", event_col="event", fit_options=fit_options)
    s = cph.summary.loc["responder"]
    return {
        "coef": float(s["coef"]),
        "hr": float(s["exp(coef)"]),
        "se": float(s["se(coef)"]),
        "ci_low": float(s["exp(coef) lower 95%"]),
        "ci_high": float(s["exp(coef) upper 95%"]),
        "p": float(s["p"]),
        "loglik": float(cph.log_likelihood_),
        "n": len(df),
        "events": int(df["event"].sum()),
    }


def main() -> int:
    import lifelines
    import numpy as np
    import pandas as pd
    import scipy

    print(f"# lifelines {lifelines.__version__}, pandas {pd.__version__}, numpy "
          f"{np.__version__}, scipy {scipy.__version__}, Python {sys.version.split()[0]}")
    print("LIFELINES = {")
    for name, rows in DATA.items():
        tight, default = fit(rows, TIGHT), fit(rows)
        worst = max(abs(default[k] - v) / abs(v) for k, v in tight.items() if v)
        if worst > 1e-4:
            raise SystemExit(f"{name}: default and tight fits differ by {worst:.2g} (relative)")
        print(f"    {name!r}: {{  # default options within {worst:.1e} (relative)")
        for key, value in tight.items():
            print(f"        {key!r}: {value!r},")
        print("    },")
    print("}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
