/// The shape of the examples a model reads, decided by the reduction stored in its header.
///
/// It selects the label grammar, whether an example spans several lines, and how many
/// lines vw prints for one example.
public enum ExampleFamily: Sendable, Equatable {
    /// Regression and binary classification: `[label [importance [initial]]]`.
    case simple
    /// `--oaa`, `--ect`, `--log_multi`, `--recall_tree`, ...: `[class [importance]]`.
    case multiclass
    /// `--multilabel_oaa`: `[class,class,...]`.
    case multilabel
    /// `--csoaa`, `--wap`: `[class[:cost] ...]`.
    case costSensitive
    /// `--cb`, `--cb_explore` (single-line): `[action:cost:probability ...]`.
    case contextualBandit
    /// `--cb_adf`, `--cb_explore_adf` and kin: an optional `shared` line, then one line per action.
    case cbADF
    /// `--csoaa_ldf`, `--wap_ldf`: one labelled line per action.
    case csoaaLDF
    /// `--ccb_explore_adf`: `ccb shared`, `ccb action` and `ccb slot` lines.
    case ccb
    /// `--slates`: `slates shared`, `slates action <slot>` and `slates slot` lines.
    case slates

    /// Whether one example spans several lines ended by a blank line.
    public var isMultiline: Bool {
        switch self {
        case .simple, .multiclass, .multilabel, .costSensitive, .contextualBandit: false
        case .cbADF, .csoaaLDF, .ccb, .slates: true
        }
    }
}
