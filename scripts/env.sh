# Sourced by the scripts: puts every pyenv Python (3.10 to 3.13) on PATH, so
# that tox finds python3.10 ... python3.13 on a fresh machine of this kind.
for bin in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[0-3].*/bin; do
    [ -d "$bin" ] && PATH="$bin:$PATH"
done
export PATH
