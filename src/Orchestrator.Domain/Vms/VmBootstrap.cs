// What a VM's guest is handed at boot, cloud-init's NoCloud way: a hostname, SSH public keys and user-data.
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Orchestrator.Domain.Vms;

/// <summary>
/// The tenant's part of a VM's first-boot configuration. The host writes it into the VM's seed disk as given and never
/// interprets it: <see cref="UserData"/> reaches the guest byte for byte.
/// </summary>
/// <param name="Hostname">the guest's hostname; null: the VM's name (always a valid hostname).</param>
/// <param name="SshKeys">OpenSSH public keys, one line each ("ssh-ed25519 AAAA… comment"); null: none.</param>
/// <param name="UserData">cloud-init user-data (a script starting "#!", "#cloud-config" …), any bytes; null: none.</param>
/// <remarks>Equality is by content (a record would compare the list and the array by reference).</remarks>
public sealed record VmBootstrap(string? Hostname = null, IReadOnlyList<string>? SshKeys = null, byte[]? UserData = null)
{
    /// <summary>The keys; empty when none.</summary>
    public IReadOnlyList<string> EffectiveSshKeys => SshKeys ?? [];

    // Methods, not properties: what is computed stays out of the journal's JSON.

    /// <summary>The user-data; empty when none.</summary>
    public ReadOnlySpan<byte> UserDataBytes() => UserData ?? [];

    /// <summary>The user-data's SHA-256 in lowercase hex: how it is shown, since the bytes may hold secrets.</summary>
    public string UserDataSha256() => Convert.ToHexStringLower(SHA256.HashData(UserDataBytes()));

    /// <summary>A bootstrap of what was given; null when nothing was (a spec without one reads the same as before).</summary>
    public static VmBootstrap? Of(string? hostname, IReadOnlyList<string>? sshKeys, byte[]? userData) =>
        hostname is null && sshKeys is null or { Count: 0 } && userData is null or { Length: 0 }
            ? null
            : new VmBootstrap(hostname, sshKeys is { Count: > 0 } ? [.. sshKeys] : null, userData is { Length: > 0 } ? [.. userData] : null);

    /// <summary>The hostname the guest gets: the one given, else the VM's name.</summary>
    public static string HostnameOf(VmSpec spec) => spec.Bootstrap?.Hostname ?? spec.Name;

    public bool Equals(VmBootstrap? other) =>
        other is not null
        && Hostname == other.Hostname
        && EffectiveSshKeys.SequenceEqual(other.EffectiveSshKeys, StringComparer.Ordinal)
        && UserDataBytes().SequenceEqual(other.UserDataBytes());

    public override int GetHashCode() => HashCode.Combine(Hostname, EffectiveSshKeys.Count, UserData?.Length ?? 0);
}

/// <summary>Bounds and checks on <see cref="VmBootstrap"/>: what a tenant may hand its guest.</summary>
public static partial class VmBootstraps
{
    /// <summary>The most user-data bytes a VM may carry: 64 KiB, as OpenStack Nova allows.</summary>
    public const int MaxUserDataBytes = 64 * 1024;

    public const int MaxSshKeys = 16;

    /// <summary>A line long enough for a 16384-bit RSA key with a comment.</summary>
    public const int MaxSshKeyChars = 4096;

    /// <summary>A hostname's length in all (RFC 1123), each dot-separated label at most 63.</summary>
    public const int MaxHostnameChars = 253;

    /// <summary>The key types OpenSSH accepts in authorized_keys (DSA left out: OpenSSH dropped it).</summary>
    public static readonly IReadOnlyList<string> KnownKeyTypes =
    [
        "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    ];

    // RFC 1123 labels, dot-separated; \z, never $ ('$' also matches before a final '\n').
    [GeneratedRegex(@"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\z", RegexOptions.CultureInvariant)]
    private static partial Regex HostnamePattern();

    public static bool IsValidHostname(string? hostname) =>
        hostname is { Length: > 0 and <= MaxHostnameChars } && HostnamePattern().IsMatch(hostname);

    public static IEnumerable<FieldError> Validate(VmBootstrap bootstrap)
    {
        if (bootstrap.Hostname is { } hostname && !IsValidHostname(hostname))
        {
            yield return new FieldError("hostname",
                $"'{FieldError.Echo(hostname)}' is not a hostname: dot-separated labels of 1-63 letters, digits and '-', not starting or ending with '-', at most {MaxHostnameChars} characters in all");
        }

        var keys = bootstrap.EffectiveSshKeys;
        if (keys.Count > MaxSshKeys)
        {
            yield return new FieldError("sshKeys", $"at most {MaxSshKeys} keys, was {keys.Count}");
        }
        else
        {
            for (var i = 0; i < keys.Count; i++)
            {
                if (KeyProblem(keys[i]) is { } problem)
                {
                    yield return new FieldError($"sshKeys[{i}]", problem);
                }
            }
        }

        if (bootstrap.UserDataBytes().Length > MaxUserDataBytes)
        {
            yield return new FieldError("userData",
                $"is {bootstrap.UserDataBytes().Length} bytes, over the limit of {MaxUserDataBytes} bytes (64 KiB)");
        }
    }

    /// <summary>
    /// OpenSSH's fingerprint of a valid key line ("SHA256:" and the unpadded base64 of the key blob's SHA-256), as
    /// <c>ssh-keygen -lf</c> prints it.
    /// </summary>
    public static string Fingerprint(string keyLine) =>
        keyLine.Split(' ') is [_, var base64, ..] && Blob(base64) is { } blob
            ? "SHA256:" + Convert.ToBase64String(SHA256.HashData(blob)).TrimEnd('=')
            : "(not a key)";

    /// <summary>
    /// What is wrong with one authorized_keys line, or null: one line of printable ASCII, a known type, and a base64
    /// blob that names the same type (so a pasted private key or a truncated key is caught here, not in the guest).
    /// </summary>
    private static string? KeyProblem(string? line)
    {
        if (string.IsNullOrEmpty(line))
        {
            return "is empty";
        }

        if (line.Length > MaxSshKeyChars)
        {
            return $"is {line.Length} characters, over the limit of {MaxSshKeyChars}";
        }

        if (line.Any(c => c < 0x20 || c > 0x7e))
        {
            return "must be one line of printable ASCII (one key per entry)";
        }

        var parts = line.Split(' ', 3);
        if (parts.Length < 2 || !KnownKeyTypes.Contains(parts[0], StringComparer.Ordinal))
        {
            return $"must start with a key type ({string.Join(", ", KnownKeyTypes)}), then the key in base64";
        }

        return Blob(parts[1]) is { } blob && BlobType(blob) == parts[0]
            ? null
            : $"the key after '{parts[0]}' is not a base64 {parts[0]} public key";
    }

    private static byte[]? Blob(string base64)
    {
        var blob = new byte[base64.Length];
        return Convert.TryFromBase64String(base64, blob, out var written) ? blob[..written] : null;
    }

    // The blob starts with its type as an SSH string: a big-endian uint32 length, then the bytes.
    private static string? BlobType(byte[] blob)
    {
        if (blob.Length < 4)
        {
            return null;
        }

        var length = (blob[0] << 24) | (blob[1] << 16) | (blob[2] << 8) | blob[3];
        return length is > 0 and <= 64 && blob.Length >= 4 + length ? Encoding.ASCII.GetString(blob, 4, length) : null;
    }
}
