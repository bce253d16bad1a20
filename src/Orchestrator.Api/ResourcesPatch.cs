using System.Text.Json;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Api;

/// <summary>
/// A JSON merge patch (RFC 7396) of a VM's resources: a field left out keeps its value, null restores the default,
/// anything else replaces it. Unknown fields and wrong types are named; the result is validated by the ledger.
/// </summary>
public static class ResourcesPatch
{
    /// <summary>The patch as the ledger applies it: the fields named, with their new values (a null: the default's).</summary>
    public static (VmResourcesPatch? Patch, IReadOnlyList<FieldError> Errors) Parse(JsonElement patch)
    {
        var (values, errors) = Apply(VmResources.Default, patch);
        return values is null
            ? (null, errors)
            : (new VmResourcesPatch(patch.EnumerateObject().Select(f => f.Name).Distinct(StringComparer.Ordinal).ToList(), values), errors);
    }

    public static (VmResources? Resources, IReadOnlyList<FieldError> Errors) Apply(VmResources current, JsonElement patch)
    {
        if (patch.ValueKind != JsonValueKind.Object)
        {
            return (null, [new FieldError("body", "must be a JSON object of resource fields")]);
        }

        var errors = new List<FieldError>();
        var result = current;
        foreach (var field in patch.EnumerateObject())
        {
            var value = field.Value;
            var isNull = value.ValueKind == JsonValueKind.Null;
            switch (field.Name)
            {
                case "cpuShares":
                    result = result with { CpuShares = isNull ? null : Int(field, errors) ?? result.CpuShares };
                    break;
                case "cpuReservationMillicores":
                    result = result with { CpuReservationMillicores = isNull ? 0 : Int(field, errors) ?? result.CpuReservationMillicores };
                    break;
                case "cpuLimitMillicores":
                    result = result with { CpuLimitMillicores = isNull ? null : Int(field, errors) ?? result.CpuLimitMillicores };
                    break;
                case "memoryReservationMiB":
                    result = result with { MemoryReservationMiB = isNull ? 0 : Int(field, errors) ?? result.MemoryReservationMiB };
                    break;
                case "memoryLimitMiB":
                    result = result with { MemoryLimitMiB = isNull ? null : Int(field, errors) ?? result.MemoryLimitMiB };
                    break;
                case "cpuset":
                    if (isNull)
                    {
                        result = result with { Cpuset = null };
                    }
                    else if (value.ValueKind == JsonValueKind.String)
                    {
                        result = result with { Cpuset = value.GetString() };
                    }
                    else
                    {
                        errors.Add(new FieldError("cpuset", "must be a CPU list string such as \"0-3,6\" or null"));
                    }

                    break;
                case "diskIops":
                    result = result with { DiskIops = isNull ? null : Long(field, errors) ?? result.DiskIops };
                    break;
                case "diskBps":
                    result = result with { DiskBps = isNull ? null : Long(field, errors) ?? result.DiskBps };
                    break;
                case "diskShares":
                    result = result with { DiskShares = isNull ? null : Int(field, errors) ?? result.DiskShares };
                    break;
                case "netBps":
                    result = result with { NetBps = isNull ? null : Long(field, errors) ?? result.NetBps };
                    break;
                case "netShares":
                    result = result with { NetShares = isNull ? null : Int(field, errors) ?? result.NetShares };
                    break;
                default:
                    errors.Add(new FieldError(FieldError.Echo(field.Name),
                        $"is not a resource field (known: {string.Join(", ", VmResourcesPatch.Known)})"));
                    break;
            }
        }

        return errors.Count > 0 ? (null, errors) : (result, errors);
    }

    private static long? Long(JsonProperty field, List<FieldError> errors)
    {
        if (field.Value.ValueKind == JsonValueKind.Number && field.Value.TryGetInt64(out var number))
        {
            return number;
        }

        errors.Add(new FieldError(field.Name, "must be a whole number or null"));
        return null;
    }

    private static int? Int(JsonProperty field, List<FieldError> errors)
    {
        if (field.Value.ValueKind == JsonValueKind.Number && field.Value.TryGetInt32(out var number))
        {
            return number;
        }

        errors.Add(new FieldError(field.Name, "must be a whole number or null"));
        return null;
    }
}
