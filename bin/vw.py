"""Run VW's command line (`vw ARGS...`) through the vowpalwabbit package.

The package embeds the real VW engine; this is the same code path as the `vw`
binary's main: parse the arguments, run the input parser to the end (training
and/or predicting), then finish (which writes `-f` and the final report).
"""

import sys


def main(argv: list[str]) -> int:
    try:
        import pylibvw
        import vowpalwabbit
    except ImportError as error:
        print(f"vw: cannot import the vowpalwabbit package ({error}); "
              "run scripts/install-deps.sh or set VW_PYTHON", file=sys.stderr)
        return 1
    try:
        workspace = vowpalwabbit.Workspace(arg_list=argv)
    except Exception as error:  # bad arguments, unreadable model, ...
        print(f"vw: {error}", file=sys.stderr)
        return 1
    status = 0
    try:
        pylibvw.vw.run_parser(workspace)
    except Exception as error:
        print(f"vw: {error}", file=sys.stderr)
        status = 1
    try:
        workspace.finish()
    except Exception as error:
        print(f"vw: {error}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
