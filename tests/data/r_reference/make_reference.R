# Reference values for theraquant.stats, computed with R (pROC, glm, geepack, stats).
# Run from this folder:  Rscript make_reference.R > make_reference_output.txt 2>&1
# Writes: aSAH.csv (pROC's example data), clustered_lesions.csv (a synthetic clustered
# lesion table made here with a fixed seed), reference_values.csv (name,value at 17
# significant digits) and roc_points_*.csv. The tests read only these files; they never run R.
suppressPackageStartupMessages({library(pROC); library(geepack)})
options(digits = 15, width = 110)
cat(R.version.string, "\n")
cat("pROC", as.character(packageVersion("pROC")), " geepack", as.character(packageVersion("geepack")), "\n\n")

vals <- list()
put <- function(name, x) { vals[[name]] <<- x; cat(sprintf("%-45s %.17g\n", name, x)) }

# ---------------------------------------------------------------- data
data(aSAH)  # Turck et al. 2010, via pROC (Robin et al. 2011); see README.md
a <- aSAH
a$outcome01 <- as.integer(a$outcome == "Poor")
a$male <- as.integer(a$gender == "Male")
a$wfns_num <- as.integer(as.character(a$wfns))
write.csv(data.frame(gos6 = as.integer(as.character(a$gos6)), outcome = as.character(a$outcome),
                     outcome01 = a$outcome01, gender = as.character(a$gender), male = a$male,
                     age = a$age, wfns = a$wfns_num, s100b = a$s100b, ndka = a$ndka),
          "aSAH.csv", row.names = FALSE)

set.seed(20261125)
n_pat <- 24
n_les <- sample(1:4, n_pat, replace = TRUE)
patient <- rep(sprintf("P%02d", 1:n_pat), n_les)
u <- rep(rnorm(n_pat, 0, 1.0), n_les)
n <- length(patient)
tbp <- round(exp(rnorm(n, log(1.4), 0.35)) + 0.3 * u, 2)
dmean <- round(rgamma(n, shape = 4, scale = 25), 1)
lp <- -6 + 2.2 * tbp + 0.025 * dmean + u
response <- as.integer(runif(n) < plogis(lp))
suv_base <- round(exp(rnorm(n, log(8), 0.4)), 1)
suv_fu <- round(suv_base * exp(rnorm(n, -0.3 + 0.4 * (1 - response), 0.3)), 1)
recist <- ifelse(response == 1, ifelse(runif(n) < 0.3, "CR", "PR"), ifelse(runif(n) < 0.6, "SD", "PD"))
cl <- data.frame(patient = patient, lesion = ave(seq_len(n), patient, FUN = seq_along),
                 response = response, tbp = tbp, dmean = dmean, suv_base = suv_base, suv_fu = suv_fu,
                 recist = recist)
write.csv(cl, "clustered_lesions.csv", row.names = FALSE)
cat("clustered_lesions:", n, "lesions in", n_pat, "patients,", sum(response), "responders\n\n")

# ---------------------------------------------------------------- ROC (pROC, DeLong)
for (m in c("s100b", "ndka", "wfns_num")) {
  r <- roc(a$outcome, a[[m]], levels = c("Good", "Poor"), direction = "<", quiet = TRUE)
  print(r)
  put(paste0("roc.", m, ".auc"), as.numeric(auc(r)))
  put(paste0("roc.", m, ".var_delong"), var(r, method = "delong"))
  ci <- ci.auc(r, method = "delong")
  put(paste0("roc.", m, ".ci_lo"), ci[1]); put(paste0("roc.", m, ".ci_hi"), ci[3])
  b <- coords(r, "best", best.method = "youden", ret = c("threshold", "sensitivity", "specificity"), transpose = FALSE)
  print(b)
  put(paste0("roc.", m, ".youden_threshold_midpoint"), b$threshold[1])
  put(paste0("roc.", m, ".youden_sens"), b$sensitivity[1]); put(paste0("roc.", m, ".youden_spec"), b$specificity[1])
  t <- coords(r, "best", best.method = "closest.topleft", ret = c("threshold", "sensitivity", "specificity"), transpose = FALSE)
  print(t)
  put(paste0("roc.", m, ".topleft_threshold_midpoint"), t$threshold[1])
  put(paste0("roc.", m, ".topleft_sens"), t$sensitivity[1]); put(paste0("roc.", m, ".topleft_spec"), t$specificity[1])
  pts <- coords(r, "all", ret = c("threshold", "sensitivity", "specificity"), transpose = FALSE)
  write.csv(pts, paste0("roc_points_", m, ".csv"), row.names = FALSE)
  rauto <- roc(a$outcome, a[[m]], levels = c("Good", "Poor"), quiet = TRUE)
  cat("auto direction for", m, ":", rauto$direction, "\n\n")
}
r1 <- roc(a$outcome, a$s100b, levels = c("Good", "Poor"), direction = "<", quiet = TRUE)
r2 <- roc(a$outcome, a$ndka, levels = c("Good", "Poor"), direction = "<", quiet = TRUE)
rt <- roc.test(r1, r2, method = "delong", paired = TRUE)
print(rt)
put("roctest.s100b_ndka.z", rt$statistic); put("roctest.s100b_ndka.p", rt$p.value)
r3 <- roc(a$outcome, a$wfns_num, levels = c("Good", "Poor"), direction = "<", quiet = TRUE)
rt2 <- roc.test(r1, r3, method = "delong", paired = TRUE)
print(rt2)
put("roctest.s100b_wfns.z", rt2$statistic); put("roctest.s100b_wfns.p", rt2$p.value)
# threshold metrics at s100b >= 0.205 (pROC counts 'case' when predictor >= threshold for direction '<')
cm <- coords(r1, 0.205, input = "threshold", ret = c("sensitivity", "specificity", "ppv", "npv", "accuracy", "tp", "fp", "tn", "fn"), transpose = FALSE)
print(cm)
for (k in names(cm)) put(paste0("thr.s100b_0.205.", k), cm[[k]])

# ---------------------------------------------------------------- ROC on the clustered table
rc <- roc(cl$response, cl$tbp, levels = c(0, 1), direction = "<", quiet = TRUE)
put("cl.roc.tbp.auc", as.numeric(auc(rc))); put("cl.roc.tbp.var_delong", var(rc, method = "delong"))

# Obuchowski (1997) clustered AUC variance, written here independently of the Python code:
obuchowski <- function(y, s, id) {
  X <- s[y == 1]; Y <- s[y == 0]; idX <- id[y == 1]; idY <- id[y == 0]
  M <- length(X); N <- length(Y)
  psi <- outer(X, Y, function(x, yy) (x > yy) + 0.5 * (x == yy))
  theta <- mean(psi)
  V10 <- rowMeans(psi); V01 <- colMeans(psi)
  ids <- unique(id); I <- length(ids)
  v10 <- sapply(ids, function(i) sum(V10[idX == i])); m <- sapply(ids, function(i) sum(idX == i))
  v01 <- sapply(ids, function(i) sum(V01[idY == i])); nn <- sapply(ids, function(i) sum(idY == i))
  I10 <- sum(m > 0); I01 <- sum(nn > 0)
  S10 <- I10 / ((I10 - 1) * M) * sum((v10 - m * theta)^2)
  S01 <- I01 / ((I01 - 1) * N) * sum((v01 - nn * theta)^2)
  S11 <- I / (I - 1) * sum((v10 - m * theta) * (v01 - nn * theta))
  c(auc = theta, var = S10 / M + S01 / N + 2 * S11 / (M * N), S10 = S10, S01 = S01, S11 = S11)
}
ob <- obuchowski(cl$response, cl$tbp, cl$patient)
print(ob)
for (k in names(ob)) put(paste0("cl.obuchowski.tbp.", k), ob[[k]])
# clustered covariance of two markers' AUCs (Obuchowski 1997, same per-patient sums) -> paired z
obuchowski2 <- function(y, s1, s2, id) {
  comp <- function(s) {
    X <- s[y == 1]; Y <- s[y == 0]
    psi <- outer(X, Y, function(x, yy) (x > yy) + 0.5 * (x == yy)); theta <- mean(psi)
    ids <- unique(id)
    list(theta = theta,
         d10 = sapply(ids, function(i) sum(rowMeans(psi)[id[y == 1] == i])) - sapply(ids, function(i) sum(id[y == 1] == i)) * theta,
         d01 = sapply(ids, function(i) sum(colMeans(psi)[id[y == 0] == i])) - sapply(ids, function(i) sum(id[y == 0] == i)) * theta)
  }
  a1 <- comp(s1); a2 <- comp(s2)
  M <- sum(y == 1); N <- sum(y == 0); ids <- unique(id); I <- length(ids)
  I10 <- length(unique(id[y == 1])); I01 <- length(unique(id[y == 0]))
  cv <- function(p, q) I10 / ((I10 - 1) * M) * sum(p$d10 * q$d10) / M + I01 / ((I01 - 1) * N) * sum(p$d01 * q$d01) / N +
    I / (I - 1) * (sum(p$d10 * q$d01) + sum(q$d10 * p$d01)) / (M * N)
  v <- cv(a1, a1) + cv(a2, a2) - 2 * cv(a1, a2)
  z <- (a1$theta - a2$theta) / sqrt(v)
  c(z = z, p = 2 * pnorm(-abs(z)), cov12 = cv(a1, a2))
}
ob2 <- obuchowski2(cl$response, cl$tbp, cl$dmean, cl$patient); print(ob2)
put("cl.obuchowski.tbp_dmean.z", ob2[["z"]]); put("cl.obuchowski.tbp_dmean.p", ob2[["p"]])
put("cl.obuchowski.tbp_dmean.cov", ob2[["cov12"]])
ob1 <- obuchowski(a$outcome01, a$s100b, seq_len(nrow(a)))
put("asah.obuchowski_one_per_patient.s100b.var", ob1[["var"]])

# ---------------------------------------------------------------- logistic regression (glm)
# glm's default convergence (epsilon = 1e-8 on the deviance) settles ~6 digits; tighten it so that
# the reference is converged to ~12 digits (the default fit is printed for comparison).
print(coef(summary(glm(outcome01 ~ s100b + age + male, family = binomial, data = a))))
tight <- glm.control(epsilon = 1e-15, maxit = 100)
g1 <- glm(outcome01 ~ s100b, family = binomial, data = a, control = tight)
g2 <- glm(outcome01 ~ s100b + age + male, family = binomial, data = a, control = tight)
for (nm in c("g1", "g2")) {
  g <- get(nm); s <- summary(g)$coefficients; ci <- confint.default(g)
  print(summary(g)); print(ci)
  for (p in rownames(s)) {
    key <- paste0("glm.", nm, ".", ifelse(p == "(Intercept)", "Intercept", p))
    put(paste0(key, ".coef"), s[p, 1]); put(paste0(key, ".se"), s[p, 2])
    put(paste0(key, ".z"), s[p, 3]); put(paste0(key, ".p"), s[p, 4])
    put(paste0(key, ".ci_lo"), ci[p, 1]); put(paste0(key, ".ci_hi"), ci[p, 2])
  }
}

# ---------------------------------------------------------------- GEE (geepack, exchangeable)
cl$pid <- as.integer(factor(cl$patient))
for (form in list(response ~ tbp, response ~ tbp + dmean)) {
  # geepack's default convergence tolerance (epsilon = 1e-4) leaves the estimates uncertain in
  # the 5th-6th digit; the reference uses a tight tolerance so that 6 significant digits are real.
  gd <- geeglm(form, id = pid, data = cl, family = binomial, corstr = "exchangeable")
  cat("default tolerance:\n"); print(coef(summary(gd)))
  gg <- geeglm(form, id = pid, data = cl, family = binomial, corstr = "exchangeable",
               control = geese.control(epsilon = 1e-12, maxit = 200))
  print(summary(gg))
  nm <- paste(attr(terms(form), "term.labels"), collapse = "+")
  s <- summary(gg)$coefficients
  for (p in rownames(s)) {
    key <- paste0("gee.", nm, ".", ifelse(p == "(Intercept)", "Intercept", p))
    put(paste0(key, ".coef"), s[p, 1]); put(paste0(key, ".se"), s[p, 2]); put(paste0(key, ".p"), s[p, 4])
  }
  put(paste0("gee.", nm, ".alpha"), summary(gg)$corr[1, 1])
  put(paste0("gee.", nm, ".scale"), summary(gg)$dispersion[1, 1])
}

# ---------------------------------------------------------------- dose-response (D50)
# MASS::dose.p gives the dose for p = 0.5 with its delta-method SE (Venables & Ripley, MASS 4th ed.)
gd <- glm(response ~ dmean, family = binomial, data = cl, control = tight)
dp <- MASS::dose.p(gd, p = 0.5); print(dp)
put("dose.glm.d50", as.numeric(dp)); put("dose.glm.d50_se", as.numeric(attr(dp, "SE")))
gdg <- geeglm(response ~ dmean, id = pid, data = cl, family = binomial, corstr = "exchangeable",
              control = geese.control(epsilon = 1e-12, maxit = 200))
b <- coef(gdg); V <- vcov(gdg); d50 <- -b[1] / b[2]; g <- c(-1 / b[2], -d50 / b[2])
put("dose.gee.d50", d50); put("dose.gee.d50_se", sqrt(as.numeric(t(g) %*% V %*% g)))

# ---------------------------------------------------------------- group comparisons
good <- a$s100b[a$outcome == "Good"]; poor <- a$s100b[a$outcome == "Poor"]
w <- wilcox.test(poor, good, exact = FALSE, correct = TRUE); print(w)
put("mw.s100b.W", w$statistic); put("mw.s100b.p", w$p.value)
x1 <- c(1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30); y1 <- c(0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29)
w2 <- wilcox.test(x1, c(0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46)); print(w2)
put("mw.exact.W", w2$statistic); put("mw.exact.p", w2$p.value)
k <- kruskal.test(s100b ~ wfns, data = a); print(k)
put("kw.s100b_wfns.H", k$statistic); put("kw.s100b_wfns.p", k$p.value)
kc <- kruskal.test(tbp ~ factor(recist), data = cl); print(kc)
put("kw.tbp_recist.H", kc$statistic); put("kw.tbp_recist.p", kc$p.value)
ws <- wilcox.test(cl$suv_fu, cl$suv_base, paired = TRUE, exact = FALSE, correct = TRUE); print(ws)
put("wsr.suv.V", ws$statistic); put("wsr.suv.p", ws$p.value)
ws2 <- wilcox.test(x1, y1, paired = TRUE); print(ws2)  # Hollander & Wolfe example, exact
put("wsr.exact.V", ws2$statistic); put("wsr.exact.p", ws2$p.value)

t22 <- table(a$gender, a$outcome); print(t22)
write.csv(as.data.frame.matrix(t22), "table_gender_outcome.csv")
c1 <- chisq.test(t22, correct = TRUE); c0 <- chisq.test(t22, correct = FALSE); print(c1); print(c0)
put("chi2.gender.yates.stat", c1$statistic); put("chi2.gender.yates.p", c1$p.value)
put("chi2.gender.plain.stat", c0$statistic); put("chi2.gender.plain.p", c0$p.value)
f22 <- fisher.test(t22); print(f22)
put("fisher.gender.p", f22$p.value); put("fisher.gender.or_cond", f22$estimate)
t25 <- table(a$outcome, a$wfns); print(t25)
write.csv(as.data.frame.matrix(t25), "table_outcome_wfns.csv")
c25 <- suppressWarnings(chisq.test(t25)); print(c25)
put("chi2.wfns.stat", c25$statistic); put("chi2.wfns.p", c25$p.value); put("chi2.wfns.df", c25$parameter)
f25 <- fisher.test(t25); print(f25)
put("fisher.wfns.p", f25$p.value)
t34 <- matrix(c(3, 1, 0, 2, 4, 1, 1, 2, 5, 0, 1, 3), nrow = 3, byrow = TRUE); print(t34)
f34 <- fisher.test(t34); print(f34); put("fisher.t34.p", f34$p.value)
tr <- table(cl$recist, cl$tbp >= 1.29); print(tr)
write.csv(as.data.frame.matrix(tr), "table_recist_tbp.csv")
ftr <- fisher.test(tr); print(ftr); put("fisher.recist_tbp.p", ftr$p.value)

# stratified response table: tbp >= 1.29 (hypoxic) x dmean >= 89 Gy (high dose)
cell <- factor(paste(ifelse(cl$tbp >= 1.29, "hypoxic", "non-hypoxic"), ifelse(cl$dmean >= 89, "high", "low")))
ts <- table(cl$response, cell); print(ts)
fs <- fisher.test(ts); print(fs); put("strat.fisher.p", fs$p.value)
cs <- suppressWarnings(chisq.test(ts)); put("strat.chi2.stat", cs$statistic); put("strat.chi2.p", cs$p.value)
for (lev in levels(cell)) {  # Wilson interval = prop.test without continuity correction
  k <- sum(cl$response[cell == lev]); n <- sum(cell == lev)
  ci <- prop.test(k, n, correct = FALSE)$conf.int
  key <- gsub(" ", "_", lev)
  put(paste0("strat.", key, ".n"), n); put(paste0("strat.", key, ".k"), k)
  put(paste0("strat.", key, ".ci_lo"), ci[1]); put(paste0("strat.", key, ".ci_hi"), ci[2])
}

out <- data.frame(name = names(vals), value = sprintf("%.17g", unlist(vals)))
write.csv(out, "reference_values.csv", row.names = FALSE, quote = FALSE)
