"""Development tools for the pack: the AWS emulator and the demo.

Used by the tests, ``make demo`` and the benchmarks only. Nothing in
``custodian_ext`` (what ships, and what Lambda zips carry) imports this
package; ``tests/inprocess/test_patches.py`` checks it.
"""
