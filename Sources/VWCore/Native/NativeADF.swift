/// What a `--cb_adf` or `--cb_explore_adf` model's options mean for a `-t` prediction.
///
/// Only epsilon-greedy exploration (`cb_explore_adf_greedy.cc`) over `cb_adf` with `--cb_type`
/// mtr, ips or dr is reproduced; any other explorer or cb_adf option keeps the model on vw.
struct NativeADF: Sendable, Equatable {
    /// `--cb_explore_adf`: print the PMF (else `cb_adf`'s chosen action, or with `--rank_all` its scores).
    var explores = false
    /// `--epsilon` (VW's default when none is stored: 0.05).
    var epsilon: Float = 0.05
    /// `--cb_type dr` gives the regressor a feature width of 2 (`cb_adf_setup`); mtr and ips 1.
    var doublyRobust = false
    var rankAll = false

    /// Reads one of the options an ADF model stores (or `vw_args` adds).
    mutating func read(_ option: VWOption) throws(NativeModelError) {
        switch option.name {
        case "cb_explore_adf":
            explores = true
        case "epsilon":
            guard let text = option.values.first, let value = Float(text), value >= 0, value <= 1 else {
                throw .unsupported("--epsilon \(option.values)")
            }
            epsilon = value
        case "cb_type":
            guard let type = option.values.first, ["mtr", "ips", "dr"].contains(type) else {
                throw .unsupported("--cb_type \(option.values.first ?? "")")
            }
            doublyRobust = type == "dr"
        case "csoaa_ldf":
            // What `cb_adf` stores for itself; `mc` (one prediction for all actions) is another computation.
            guard option.values == ["multiline"] else { throw .unsupported("--csoaa_ldf \(option.values)") }
        case "rank_all":
            rankAll = true
        default:
            // cb_adf, csoaa_rank; learning_rate and power_t only change training.
            break
        }
    }

    /// The combination must be one the ADF differential test covers.
    func check(options names: Set<String>) throws(NativeModelError) {
        guard names.contains("cb_adf") else { throw .unsupported("--cb_explore_adf without the --cb_adf it stores") }
        guard names.contains("csoaa_ldf"), names.contains("csoaa_rank") else {
            throw .unsupported("--cb_adf without the --csoaa_ldf multiline --csoaa_rank it stores")
        }
        if explores && rankAll { throw .unsupported("--rank_all with --cb_explore_adf") }
        if !explores && names.contains("epsilon") { throw .unsupported("--epsilon without --cb_explore_adf") }
    }
}
