# Tests of estimators/: exact against the ridge closed form, the baselines (cg, neumann, soba)
# against exact and dense references, and the nhgd estimator's routes, K-FAC factors and
# Fisher bound (estimators/nhgd/).
nhgd_test_program(test_ridge_exact estimators/test_ridge_exact.c)
nhgd_add_mpi_test(ridge_exact COMMAND $<TARGET_FILE:test_ridge_exact> LABELS fast)
nhgd_test_program(test_baselines estimators/test_baselines.c)
nhgd_add_mpi_test(baselines COMMAND $<TARGET_FILE:test_baselines> LABELS fast)
nhgd_test_program(test_efim_routes estimators/nhgd/test_efim_routes.c)
nhgd_add_mpi_test(efim_routes COMMAND $<TARGET_FILE:test_efim_routes> LABELS fast)
nhgd_test_program(test_ridge_fisher estimators/nhgd/test_ridge_fisher.c)
nhgd_add_mpi_test(ridge_fisher COMMAND $<TARGET_FILE:test_ridge_fisher> LABELS fast)
nhgd_test_program(test_kfac estimators/nhgd/test_kfac.c)
nhgd_add_mpi_test(kfac COMMAND $<TARGET_FILE:test_kfac> LABELS fast)
nhgd_test_program(test_kfac_net estimators/nhgd/test_kfac_net.c)
nhgd_add_mpi_test(kfac_net COMMAND $<TARGET_FILE:test_kfac_net> LABELS fast)
nhgd_test_program(test_nbo estimators/test_nbo.c)
nhgd_add_mpi_test(nbo COMMAND $<TARGET_FILE:test_nbo> LABELS fast)
# The PCG kernel on dense matrices (one process), and cg preconditioned by NHGD's M against
# the nhgd estimator (bit for bit), exact, and itself across the routes of M.
nhgd_test_program(test_pcg estimators/test_pcg.c)
nhgd_add_serial_test(pcg COMMAND $<TARGET_FILE:test_pcg>)
nhgd_test_program(test_precond estimators/test_precond.c)
nhgd_add_mpi_test(precond COMMAND $<TARGET_FILE:test_precond> LABELS fast)
