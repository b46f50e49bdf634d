"""Facts about the GTZAN genre collection (Tzanetakis & Cook, 2002) that the harness relies on."""

#: GTZAN's ten genres, in the alphabetical order of its folders (and of a fitted LabelEncoder).
GTZAN_GENRES: tuple[str, ...] = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)

#: GTZAN's sample rate; every clip is mono at this rate.
GTZAN_SAMPLE_RATE = 22050
