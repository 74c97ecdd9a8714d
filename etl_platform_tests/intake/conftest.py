def pytest_terminal_summary(terminalreporter):
    from etl_platform_tests.intake.test_corpus import CASES, HANDLED

    if HANDLED:
        handled = sum(HANDLED.values())
        terminalreporter.write_line(
            f"bad-input corpus: {handled}/{len(CASES)} cases handled as expected ({len(HANDLED)} run)"
        )
