// What a VM asks of its host's labels (Kubernetes' node selector, Nomad's constraints).
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Placement;

public enum HostSelectorOperator
{
    /// <summary><c>key=value</c>: the host has the label with that value.</summary>
    Is,

    /// <summary><c>key!=value</c>: the host lacks the label or has another value.</summary>
    IsNot,

    /// <summary><c>key</c>: the host has the label, whatever its value.</summary>
    Exists,

    /// <summary><c>!key</c>: the host lacks the label.</summary>
    Absent,
}

/// <summary>One term of a host selector; a VM's terms must all hold.</summary>
public sealed record HostSelectorTerm(string Key, HostSelectorOperator Operator, string Value = "")
{
    public bool Holds(IReadOnlyDictionary<string, string> labels) => Operator switch
    {
        HostSelectorOperator.Is => labels.TryGetValue(Key, out var v) && v == Value,
        HostSelectorOperator.IsNot => !labels.TryGetValue(Key, out var v) || v != Value,
        HostSelectorOperator.Exists => labels.ContainsKey(Key),
        HostSelectorOperator.Absent => !labels.ContainsKey(Key),
        _ => false,
    };

    /// <summary>The term as it is typed and stored: <c>zone=a</c>, <c>zone!=a</c>, <c>ssd</c>, <c>!ssd</c>.</summary>
    public override string ToString() => Operator switch
    {
        HostSelectorOperator.Is => $"{Key}={Value}",
        HostSelectorOperator.IsNot => $"{Key}!={Value}",
        HostSelectorOperator.Exists => Key,
        _ => $"!{Key}",
    };
}

/// <summary>Host selectors as stored in a <see cref="VmSpec"/>: a list of terms in their typed form.</summary>
public static class HostSelectors
{
    public const int MaxTerms = 16;

    public static readonly IReadOnlyList<HostSelectorTerm> None = [];

    /// <summary>The term a person typed, or null when it is not one (<see cref="Validate"/> says why).</summary>
    public static HostSelectorTerm? Parse(string text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        var notEquals = text.IndexOf("!=", StringComparison.Ordinal);
        if (notEquals > 0)
        {
            return new HostSelectorTerm(text[..notEquals], HostSelectorOperator.IsNot, text[(notEquals + 2)..]);
        }

        var equals = text.IndexOf('=');
        if (equals > 0)
        {
            return new HostSelectorTerm(text[..equals], HostSelectorOperator.Is, text[(equals + 1)..]);
        }

        return text[0] == '!'
            ? new HostSelectorTerm(text[1..], HostSelectorOperator.Absent)
            : new HostSelectorTerm(text, HostSelectorOperator.Exists);
    }

    /// <summary>The spec's terms, parsed (validated specs only: an unparsable term is skipped).</summary>
    public static IReadOnlyList<HostSelectorTerm> Of(VmSpec spec) =>
        spec.HostSelector is not { Count: > 0 } typed ? None : typed.Select(Parse).OfType<HostSelectorTerm>().ToList();

    public static bool Hold(IReadOnlyList<HostSelectorTerm> terms, IReadOnlyDictionary<string, string> labels)
    {
        foreach (var term in terms)
        {
            if (!term.Holds(labels))
            {
                return false;
            }
        }

        return true;
    }

    public static IEnumerable<FieldError> Validate(IReadOnlyList<string> terms)
    {
        if (terms.Count > MaxTerms)
        {
            yield return new FieldError("hostSelector", $"at most {MaxTerms} terms, was {terms.Count}");
            yield break;
        }

        foreach (var text in terms)
        {
            var term = Parse(text);
            // The key and value follow the label rules: checked as the label they would match.
            var asLabel = term is null ? null : new Dictionary<string, string> { [term.Key] = term.Value };
            if (term is null || term.Key.Length == 0 || VmLabels.Validate(asLabel!).Any())
            {
                yield return new FieldError("hostSelector",
                    $"'{FieldError.Echo(text)}' is not a selector: give key=value, key!=value, key (it exists) or !key (it does not), " +
                    "keys and values as labels have them");
            }
        }
    }

    /// <summary>Same terms in the same order.</summary>
    public static bool Same(IReadOnlyList<string>? a, IReadOnlyList<string>? b) => (a ?? []).SequenceEqual(b ?? [], StringComparer.Ordinal);
}
