# Tests of core/: option sets (parsing, validation, help) and the counter-based RNG.
nhgd_test_program(test_options core/test_options.c)
nhgd_add_serial_test(options COMMAND $<TARGET_FILE:test_options>)
