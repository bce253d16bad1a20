using System.Security.Cryptography;
using System.Text;

namespace Orchestrator.Api;

/// <summary>
/// API keys: random, shown once, kept only as a SHA-256 hash in memory, compared in constant time, never logged.
/// (Keys are 256-bit random, so a fast hash is enough: there is nothing to brute-force.)
/// </summary>
public sealed class ApiKeys
{
    private readonly byte[] _adminKeyHash;

    public ApiKeys(string adminKey)
    {
        _adminKeyHash = Hash(adminKey);
    }

    public static string Generate() =>
        "orc_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    public bool IsAdmin(string? presented) =>
        presented is not null && CryptographicOperations.FixedTimeEquals(Hash(presented), _adminKeyHash);

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
