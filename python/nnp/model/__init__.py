"""The regressors of E_i(G_i): the torch network and the quadratic term."""
