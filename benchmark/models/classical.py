"""The classical learners the study's related work names: SVM, k-NN, random forest, logistic regression.

Each is a scikit-learn ``Pipeline`` of a ``StandardScaler`` and the learner, meant for the
``handcrafted`` representation (Tzanetakis & Cook 2002 and the GTZAN features table: MFCC and
spectral statistics per clip): ``[model.svm.features] representation = "handcrafted"``. They
take frames too, flattened, at a cost that grows with the input.
"""

from __future__ import annotations

import warnings

from benchmark.models.registry import register_model
from benchmark.models.sklearn_pipeline import SklearnPipeline

# scikit-learn 1.9 deprecates SVC(probability=True) for CalibratedClassifierCV, whose folds need
# several clips of every genre in training; libsvm's own Platt scaling copes with the smallest
# sets. The warning is silenced by its text alone; pyproject caps scikit-learn below 1.11, where
# the parameter goes.
warnings.filterwarnings("ignore", message="The `probability` parameter was deprecated", category=FutureWarning)

SVM_DEFAULTS = {"C": 10.0, "gamma": "scale"}
SVM_SPACE = {
    "C": {"type": "float", "low": 0.01, "high": 1000.0, "log": True},
    "gamma": {"type": "categorical", "choices": ["scale", "auto"]},
}


def _pipeline(learner):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("learner", learner)])


@register_model("svm", SVM_DEFAULTS, SVM_SPACE, adapter=SklearnPipeline)
def build_svm(input_shape, n_classes, *, C, gamma):
    """SVM with an RBF kernel on standardised features (probabilities by Platt scaling)."""
    from sklearn.svm import SVC

    return _pipeline(SVC(C=C, gamma=gamma, kernel="rbf", probability=True))


@register_model(
    "knn", {"n_neighbors": 5, "weights": "distance"},
    {"n_neighbors": {"type": "int", "low": 1, "high": 30}, "weights": {"type": "categorical",
                                                                      "choices": ["uniform", "distance"]}},
    adapter=SklearnPipeline,
)
def build_knn(input_shape, n_classes, *, n_neighbors, weights):
    """k nearest neighbours on standardised features."""
    from sklearn.neighbors import KNeighborsClassifier

    return _pipeline(KNeighborsClassifier(n_neighbors=n_neighbors, weights=weights))


@register_model(
    "random_forest", {"n_estimators": 300, "max_depth": 0, "max_features": "sqrt"},
    {"n_estimators": {"type": "int", "low": 50, "high": 500, "step": 50},
     "max_depth": {"type": "int", "low": 0, "high": 30, "step": 5},
     "max_features": {"type": "categorical", "choices": ["sqrt", "log2"]}},
    adapter=SklearnPipeline,
)
def build_random_forest(input_shape, n_classes, *, n_estimators, max_depth, max_features):
    """Random forest (max_depth 0: grown until pure), on standardised features."""
    from sklearn.ensemble import RandomForestClassifier

    return _pipeline(RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth or None,
                                            max_features=max_features, n_jobs=1))


@register_model(
    "logreg", {"C": 1.0}, {"C": {"type": "float", "low": 1e-3, "high": 100.0, "log": True}},
    adapter=SklearnPipeline,
)
def build_logreg(input_shape, n_classes, *, C):
    """Multinomial logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression

    return _pipeline(LogisticRegression(C=C, max_iter=2000))
